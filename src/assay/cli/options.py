"""Options shared by ``run`` and ``optimize``, and their translation into typed configs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from assay.bench.config import ScoringConfig
    from assay.engine.engine import EngineConfig
    from assay.records import GenerationParams, ModelConfig
    from assay.scoring.judge import JudgeConfig

MODEL = typer.Option(
    [], "-m", "--model", help="Model spec provider/model, repeatable (e.g. local/smollm2)."
)
CONFIG = typer.Option(None, "--config", help="Models config file (YAML, JSON or TOML).")
BASE_URL = typer.Option(None, "--base-url", help="OpenAI-compatible URL for the -m models.")
METRIC = typer.Option(
    [],
    "--metric",
    help="Reference metric, repeatable: exact, contains, label, number, rouge, "
    "bleu, chrf, json, regex:PATTERN, json-schema:FILE, python:FILE.py:FUNC.",
)
JUDGE = typer.Option(
    None, "--judge", "--judges", help="Judge model spec; comma-separated for a panel (a,b)."
)
JUDGE_CRITERIA = typer.Option(None, "--judge-criteria", help="Rubric file: your idea of good.")
JUDGE_BASE_URL = typer.Option(None, "--judge-base-url", help="OpenAI-compatible URL for judges.")
JUDGE_DIMENSIONS = typer.Option(
    None, "--judge-dimensions", help="Comma-separated criteria scored separately (a,b,c)."
)
JUDGE_REPEATS = typer.Option(1, "--judge-repeats", min=1, help="Judgements per response.")
INPUT_FIELD = typer.Option(None, "--input-field", help="Input field of flat records (dots ok).")
OUTPUT_FIELD = typer.Option(None, "--output-field", help="Reference field of flat records.")
CONCURRENCY = typer.Option(16, "--concurrency", min=1, help="Requests in flight at once.")
TIMEOUT = typer.Option(120.0, "--timeout", min=1, help="Seconds before a request times out.")
MAX_TOKENS = typer.Option(256, "--max-tokens", min=1, help="Output token cap per response.")
TEMPERATURE = typer.Option(0.0, "--temperature", min=0, help="Sampling temperature.")
SEED = typer.Option(0, "--seed", help="Seed for sampling, splits and bootstrap.")
MAX_COST = typer.Option(None, "--max-cost", min=0, help="Hard budget in USD for all calls.")
PRICES = typer.Option(None, "--prices", help="Price overrides file (JSON, YAML or TOML).")
NO_CACHE = typer.Option(False, "--no-cache", help="Bypass the response cache.")
STORE = typer.Option(None, "--store", help="Run store directory (default .assay, or $ASSAY_STORE).")
JSON_OUT = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
RESUME = typer.Option(None, "--resume", help="Continue an interrupted run.")
LOCAL_PARALLEL = typer.Option(4, "--local-parallel", min=1, help="Parallel slots per local model.")


def resolve_models(
    specs: list[str], config: Path | None, base_url: str | None
) -> list[ModelConfig]:
    from assay.errors import UserInputError
    from assay.providers.config_file import load_models_config
    from assay.providers.specs import resolve_model

    models = [resolve_model(s, base_url=base_url) for s in specs]
    if config is not None:
        models += load_models_config(config)
    if not models:
        raise UserInputError("No model given", "pass -m provider/model or --config models.yaml")
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise UserInputError("Two models share a label", "give each a distinct label in --config")
    return models


def judge_config(
    judge: str | None,
    criteria: Path | None,
    base_url: str | None,
    dimensions: str | None,
    repeats: int,
) -> JudgeConfig | None:
    from assay.errors import UserInputError
    from assay.providers.specs import resolve_model
    from assay.scoring.judge import JudgeConfig, load_rubric

    if judge is None:
        if criteria is not None:
            raise UserInputError("--judge-criteria needs --judge SPEC")
        return None
    if criteria is None:
        raise UserInputError("--judge needs a rubric", "pass --judge-criteria RUBRIC.md")
    models = [resolve_model(s.strip(), base_url=base_url) for s in judge.split(",") if s.strip()]
    return JudgeConfig(
        models=models,
        rubric=load_rubric(criteria),
        rubric_path=str(criteria),
        dimensions=[d.strip() for d in (dimensions or "").split(",") if d.strip()],
        repeats=repeats,
    )


def scoring_config(
    metrics: list[str],
    judge: str | None,
    criteria: Path | None,
    base_url: str | None,
    dimensions: str | None,
    repeats: int,
) -> ScoringConfig:
    """What both jobs score with: reference metrics and/or the judge."""
    from assay.bench.config import ScoringConfig

    return ScoringConfig(
        metrics=metrics,
        judge=judge_config(judge, criteria, base_url, dimensions, repeats),
    )


def engine_config(**kw: Any) -> EngineConfig:
    from assay.engine.engine import Budget, EngineConfig

    return EngineConfig(
        concurrency=kw["concurrency"],
        timeout_s=kw["timeout"],
        use_cache=not kw["no_cache"],
        local_parallel=kw["local_parallel"],
        budget=Budget(max_cost_usd=kw.get("max_cost"), max_calls=kw.get("max_calls")),
    )


def generation_params(max_tokens: int, temperature: float, seed: int) -> GenerationParams:
    from assay.records import GenerationParams

    return GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)


def given(name: str) -> bool:
    """Whether the user passed option ``name`` (not its default); a resume keeps the run's own."""
    import click
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is not None and source is not ParameterSource.DEFAULT


def resumed_engine(stored: EngineConfig, new: EngineConfig) -> EngineConfig:
    """A resume may raise the budget or change concurrency, only where the user says so."""
    budget = stored.budget.model_copy(
        update={
            **({"max_cost_usd": new.budget.max_cost_usd} if given("max_cost") else {}),
            **({"max_calls": new.budget.max_calls} if given("max_calls") else {}),
        }
    )
    update = {
        "budget": budget,
        **({"concurrency": new.concurrency} if given("concurrency") else {}),
    }
    return stored.model_copy(update=update)
