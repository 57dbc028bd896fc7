"""Command-line options in typed groups, and their translation into the jobs' configs.

A command declares one parameter per group (``models: ModelOptions``); ``grouped`` gives typer
the flat option list and hands the body one object per group. Only typer is imported at module
level, so ``assay --help`` stays fast.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import typer

if TYPE_CHECKING:
    from assay.analysis.decisions import DecisionConfig
    from assay.analysis.gate import GateConfig
    from assay.benchmark.config import RunConfig
    from assay.engine.batch import BatchSettings
    from assay.engine.engine import EngineConfig
    from assay.evaluation.config import ScoringConfig
    from assay.jobs import ResumeChanges, Session
    from assay.records import GenerationParams, ModelConfig
    from assay.scoring.judge import JudgeConfig

DEFAULT_CONCURRENCY = 16

STORE = typer.Option(None, "--store", help="Run store directory (default .assay, or $ASSAY_STORE).")
JSON_OUT = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
PRICES = typer.Option(None, "--prices", help="Price overrides file (JSON, YAML or TOML).")
INPUT_FIELD = typer.Option(None, "--input-field", help="Input field of flat records (dots ok).")
OUTPUT_FIELD = typer.Option(None, "--output-field", help="Reference field of flat records.")


def _metric_help() -> str:
    # The registry's usage list, without importing the metrics (numpy) for --help.
    return (
        "Reference metric, repeatable: exact, contains, regex:PATTERN, label[:A,B,C], "
        "number[:TOLERANCE], rouge[:VARIANT], bleu[:TOKENIZER], chrf, json, "
        "json-schema:FILE, python:FILE.py:FUNC."
    )


def grouped(body: Callable[[Any], None]) -> Callable[..., None]:
    """Turn ``body(flags: Flags)``, where ``Flags`` is a dataclass of option groups (dataclasses
    whose defaults are typer options), into a typer command with every group's options."""
    (flags_type,) = (t for name, t in get_type_hints(body).items() if name != "return")
    groups = get_type_hints(flags_type)
    params, hints = _group_params(body.__name__, groups.values())

    def command(**values: Any) -> None:
        body(
            flags_type(
                **{
                    name: group(**{f.name: values[f.name] for f in fields(group)})
                    for name, group in groups.items()
                }
            )
        )

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = hints
    command.__name__, command.__doc__ = body.__name__, body.__doc__
    return command


def _group_params(
    where: str, groups: Iterable[Any]
) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    params: list[inspect.Parameter] = []
    hints: dict[str, Any] = {}
    for group in groups:
        if not is_dataclass(group):
            raise TypeError(f"{where}: {group!r} is not an option group")
        types = get_type_hints(group)
        for f in fields(group):
            if f.name in hints:
                raise TypeError(f"{where}: option {f.name!r} is in two groups")
            hints[f.name] = types[f.name]
            kind = inspect.Parameter.KEYWORD_ONLY
            params.append(
                inspect.Parameter(f.name, kind, default=f.default, annotation=types[f.name])
            )
    return params, hints


@dataclass
class ModelOptions:
    model: list[str] = typer.Option(
        [], "-m", "--model", help="Model spec provider/model, repeatable (e.g. local/smollm2)."
    )
    config: Path | None = typer.Option(
        None, "--config", help="Models config file (YAML, JSON or TOML)."
    )
    base_url: list[str] = typer.Option(
        [],
        "--base-url",
        metavar="URL",
        help="OpenAI-compatible URL for the -m models; repeat it for replicas of one model "
        "(calls go to the least busy; one that fails to connect is taken out for a while).",
    )

    def resolve(self) -> list[ModelConfig]:
        from assay.errors import UserInputError
        from assay.providers.config_file import load_models_config
        from assay.providers.specs import resolve_model

        models = [resolve_model(s, base_url=self.base_url or None) for s in self.model]
        if self.config is not None:
            models += load_models_config(self.config)
        if not models:
            raise UserInputError("No model given", "pass -m provider/model or --config models.yaml")
        return models


@dataclass
class ScoringOptions:
    metric: list[str] = typer.Option([], "--metric", help=_metric_help())
    judge: str | None = typer.Option(
        None, "--judge", "--judges", help="Judge model spec; comma-separated for a panel (a,b)."
    )
    judge_criteria: Path | None = typer.Option(
        None, "--judge-criteria", help="Rubric file: your idea of good."
    )
    judge_base_url: str | None = typer.Option(
        None, "--judge-base-url", help="OpenAI-compatible URL for judges."
    )
    judge_dimensions: str | None = typer.Option(
        None, "--judge-dimensions", help="Comma-separated criteria scored separately (a,b,c)."
    )
    judge_repeats: int = typer.Option(1, "--judge-repeats", min=1, help="Judgements per response.")
    judge_max_tokens: int = typer.Option(
        512,
        "--judge-max-tokens",
        min=16,
        help="Output token cap per judge reply (the judge's prompt and this must fit its context).",
    )

    def config(self) -> ScoringConfig:
        """What both jobs score with: reference metrics and/or the judge."""
        from assay.evaluation.config import ScoringConfig

        return ScoringConfig(metrics=self.metric, judge=self._judge())

    def _judge(self) -> JudgeConfig | None:
        from assay.errors import UserInputError

        if self.judge is None:
            if self.judge_criteria is not None:
                raise UserInputError("--judge-criteria needs --judge SPEC")
            return None
        if self.judge_criteria is None:
            raise UserInputError("--judge needs a rubric", "pass --judge-criteria RUBRIC.md")
        return judge_config(
            self.judge,
            self.judge_criteria,
            self.judge_base_url,
            self.judge_dimensions,
            self.judge_repeats,
            max_tokens=self.judge_max_tokens,
        )


def judge_config(
    specs: str,
    criteria: Path,
    base_url: str | None,
    dimensions: str | None,
    repeats: int,
    *,
    max_tokens: int = 512,
) -> JudgeConfig:
    """A judge (or a panel: comma-separated specs) with its rubric, as the flags give it."""
    from assay.providers.specs import resolve_model
    from assay.scoring.judge import JudgeConfig, load_rubric

    models = [resolve_model(s.strip(), base_url=base_url) for s in specs.split(",") if s.strip()]
    return JudgeConfig(
        models=models,
        rubric=load_rubric(criteria),
        rubric_path=str(criteria),
        dimensions=[d.strip() for d in (dimensions or "").split(",") if d.strip()],
        repeats=repeats,
        max_tokens=max_tokens,
    )


@dataclass
class PipelineOptions:
    """Pipeline mode: the prompt under test runs inside the user's own code."""

    pipeline: str | None = typer.Option(
        None,
        "--pipeline",
        help="Run your code for each sample: FILE.py:FUNCTION or module:function, called as "
        "f(prompt, sample, client); its model calls through client go via Assay (the run's "
        "model, cache, budget). Importing it runs its code. See docs/pipelines.md.",
    )


@dataclass
class DataOptions:
    input_field: str | None = INPUT_FIELD
    output_field: str | None = OUTPUT_FIELD

    def mapping(self) -> Any:
        from assay.data.datasets import FieldMapping

        return FieldMapping(input_field=self.input_field, output_field=self.output_field)


@dataclass
class GenerationOptions:
    max_tokens: int = typer.Option(
        256, "--max-tokens", min=1, help="Output token cap per response."
    )
    temperature: float = typer.Option(0.0, "--temperature", min=0, help="Sampling temperature.")
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for sampling, splits and bootstrap.")

    def params(self) -> GenerationParams:
        from assay.records import GenerationParams

        return GenerationParams(
            max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed
        )


def _concurrency(value: str | None) -> str | None:
    """``--concurrency``: a number, ``auto`` or ``auto:N``, checked when the flag is read."""
    if value is None:
        return None
    from assay.engine.limiter import concurrency_fields

    try:
        concurrency_fields(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value.strip().lower()


@dataclass
class EngineOptions:
    """How calls are made. ``--max-cost`` and ``--concurrency`` also apply to a resume."""

    concurrency: str | None = typer.Option(
        None,
        "--concurrency",
        metavar="N|auto[:N]",
        callback=_concurrency,
        help=f"Requests in flight at once (default {DEFAULT_CONCURRENCY}), or auto: start at 4 "
        "and find what each endpoint takes, backing off on 429s (auto:N caps it at N, default "
        "256). A resume keeps the run's.",
    )
    local_parallel: int = typer.Option(
        4, "--local-parallel", min=1, help="Parallel slots per local model."
    )
    timeout: float = typer.Option(
        120.0, "--timeout", min=1, max=86_400, help="Seconds before a request times out."
    )
    max_cost: float | None = typer.Option(
        None, "--max-cost", min=0, help="Hard budget in USD for all calls (a resume may raise it)."
    )
    no_cache: bool = typer.Option(False, "--no-cache", help="Bypass the response cache.")

    def config(self, max_calls: int | None = None) -> EngineConfig:
        from assay.engine.engine import Budget, EngineConfig
        from assay.engine.limiter import concurrency_fields

        return EngineConfig(
            **concurrency_fields(self.concurrency or DEFAULT_CONCURRENCY),
            timeout_s=self.timeout,
            use_cache=not self.no_cache,
            local_parallel=self.local_parallel,
            budget=Budget(max_cost_usd=self.max_cost, max_calls=max_calls),
        )

    def changes(self, max_calls: int | None = None) -> ResumeChanges:
        """What a resume takes from the flags: only those the user gave."""
        from assay.jobs import ResumeChanges

        return ResumeChanges(
            max_cost_usd=self.max_cost, max_calls=max_calls, concurrency=self.concurrency
        )


@dataclass
class BatchOptions:
    """Batch mode: requests go through the providers' batch APIs, at their batch price."""

    batch: bool = typer.Option(
        False,
        "--batch",
        help="Send every model's requests through its provider's batch API (openai, anthropic, "
        "compat servers with /v1/batches): about half the price, answers within 24 h. A resume "
        "collects the batches already sent.",
    )
    batch_max_requests: int = typer.Option(
        10_000, "--batch-max-requests", min=1, max=50_000, help="Requests per batch job."
    )
    batch_poll: float = typer.Option(
        30.0,
        "--batch-poll",
        min=0.01,
        max=3600,
        help="Seconds before a batch's first status check; the wait doubles up to 10 minutes.",
    )

    def settings(self) -> BatchSettings:
        from assay.engine.batch import BatchSettings

        return BatchSettings(
            max_requests=self.batch_max_requests,
            poll_s=self.batch_poll,
            poll_max_s=max(600.0, self.batch_poll),
        )

    def apply(self, config: RunConfig) -> RunConfig:
        """The run with these batch settings; with ``--batch`` every model in batch mode."""
        config = config.with_batch() if self.batch else config
        return config.model_copy(update={"batch": self.settings()})


@dataclass
class DecisionOptions:
    """The question a comparison answers: within what loss, against which variant."""

    margin: float | None = typer.Option(
        None,
        "--margin",
        min=0,
        help="The loss you accept, in the primary metric's units (e.g. 0.05): each variant is "
        "then called non-inferior, inferior, superior or not settled against the reference.",
    )
    baseline: str | None = typer.Option(
        None, "--baseline", help="Compare every variant with this label (default: the best)."
    )
    adaptive: bool = typer.Option(
        False,
        "--adaptive",
        help="Evaluate in rounds and stop spending on a variant once its verdict is settled "
        "(needs --margin).",
    )

    def config(self, models_config: Path | None = None) -> DecisionConfig:
        """The flags, over the ``margin``/``baseline``/``adaptive`` keys of a models config."""
        from assay.analysis.decisions import DecisionConfig
        from assay.providers.config_file import load_decision_keys

        given = {"margin": self.margin, "baseline": self.baseline, "adaptive": self.adaptive}
        from_file = load_decision_keys(models_config) if models_config is not None else {}
        return DecisionConfig.model_validate(
            {**from_file, **{k: v for k, v in given.items() if v not in (None, False)}}
        )


@dataclass
class GateOptions:
    """The CI gate (exit code 3 when a check fails) and the files a CI job reads."""

    fail_under: float | None = typer.Option(
        None,
        "--fail-under",
        min=0,
        max=1,
        help="Exit with code 3 when any variant's mean primary score is below this.",
    )
    fail_if_worse_than: str | None = typer.Option(
        None,
        "--fail-if-worse-than",
        help="Exit with code 3 when a variant is shown worse (paired test, by more than "
        "--margin) than the same-label variant of this run (an id, or its -o results JSON).",
    )
    junit: Path | None = typer.Option(
        None, "--junit", help="Write JUnit XML: a testcase per variant and per gate check."
    )
    summary: Path | None = typer.Option(
        None, "--summary", help="Write a Markdown summary (e.g. to $GITHUB_STEP_SUMMARY)."
    )

    def config(self) -> GateConfig:
        from assay.analysis.gate import GateConfig

        return GateConfig(fail_under=self.fail_under, fail_if_worse_than=self.fail_if_worse_than)


def given_on_command_line() -> frozenset[str]:
    """The options of the running command that were typed, not left at their defaults: an
    eval file's values yield only to these."""
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is None:
        return frozenset()
    typed = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return frozenset(name for name in ctx.params if ctx.get_parameter_source(name) in typed)


@dataclass
class StoreOptions:
    store: Path | None = STORE
    prices: Path | None = PRICES

    def session(self, use_cache: bool = True) -> Session:
        from assay.jobs import Session

        return Session.open(self.store, self.prices, use_cache=use_cache)
