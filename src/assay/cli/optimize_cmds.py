"""``assay optimize``: same model, better prompt, proven on held-out data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import typer

from assay.cli import options as o

if TYPE_CHECKING:
    from assay.bench.runner import Services
    from assay.engine.engine import EngineConfig
    from assay.optimize.config import OptimizeConfig, SplitConfig
    from assay.optimize.per_model import PerModelReport
    from assay.optimize.records import IterationRecord
    from assay.records import ModelConfig

OPTIMIZE_HELP = """Optimize a prompt for one model: evaluate, diagnose, rewrite, verify.

The data is split (seeded, stratified by label) into train / val / test. The loop sees only
train; a rewrite is kept only if it beats the best prompt on val beyond noise; the baseline
and the final prompt are scored once on test, with a paired significance test. The prompt
written to -o is exactly the one whose test score is printed.

[bold]Examples[/bold]

  assay optimize reviews.jsonl prompt.md -m local/smollm2 --metric label -o best.md
  assay optimize notes.jsonl prompt.md -m openrouter/meta-llama/llama-3.1-8b-instruct \\
      --judge openrouter/qwen/qwen3-8b --judge-criteria rubric.md \\
      --reasoning-model openai/gpt-4o-mini --max-cost 5 -o best.md
  assay optimize --resume 20261128-101500-a1b2c3 -o best.md

With no --reasoning-model the task model also writes the rewrites: a small local model is
a weak reasoner, so expect many rejected proposals (each with its reason) and modest gains.

[bold]Strategies[/bold] (--strategy; every candidate is accepted only on val)

  auto        phases of the others, each chosen by the reasoner from the failures seen
              (fallback order: structural, fewshot, iterative, pareto; duel without references)
  iterative   diagnose the failures, rewrite the prompt
  structural  the same instructions in other layouts (sections, XML, format first, ...)
  fewshot     demonstrations from train aimed at the failures; no reasoner needed
  pareto      a pool of prompts that each win some items; rewrite from their own failures
  duel        pairwise duels judged in both orders (needs --judge; no references needed)

[bold]Several models[/bold]: -m A -m B --per-model optimizes a prompt for each model (one run
each, the budget split evenly), then compares every model with its own best prompt on test.
"""


def register(app: typer.Typer) -> None:
    app.command("optimize", help=OPTIMIZE_HELP)(optimize_command)


# The options only optimize has (shared ones are in assay.cli.options).
REASONING_MODEL = typer.Option(
    None, "--reasoning-model", help="Model that diagnoses and rewrites (default: -m)."
)
REASONING_BASE_URL = typer.Option(
    None, "--reasoning-base-url", help="OpenAI-compatible URL for the reasoning model."
)
STRATEGY = typer.Option(
    "auto", "--strategy", help="auto, iterative, structural, fewshot, pareto or duel (see above)."
)
PER_MODEL = typer.Option(
    False, "--per-model", help="Optimize for each -m model, then compare them on test."
)
MAX_ITERATIONS = typer.Option(5, "--max-iterations", min=0, help="Rewrite rounds.")
MAX_CALLS = typer.Option(None, "--max-calls", min=1, help="Hard call budget.")
TARGET = typer.Option(None, "--target", min=0, max=1, help="Stop when val reaches this score.")
PATIENCE = typer.Option(3, "--patience", min=1, help="Stop after N rounds without val gain.")
BATCH_SIZE = typer.Option(16, "--batch-size", min=1, help="Train rows per round.")
SPLIT = typer.Option("0.5,0.2,0.3", "--split", help="train,val,test fractions.")
MIN_GAIN = typer.Option(0.01, "--min-gain", min=0, help="Smallest val gain that counts as better.")
NOISE_Z = typer.Option(
    1.0, "--noise-z", min=0, help="Val gain must exceed this many standard errors."
)
SOURCE_MODEL = typer.Option(None, "--source-model", help="Model family the prompt was written for.")
REASONING_MAX_TOKENS = typer.Option(
    1024, "--reasoning-max-tokens", min=64, help="Output cap for each rewrite."
)
OUTPUT = typer.Option(None, "-o", "--output", help="Write the best prompt here.")
RESULTS_JSON = typer.Option(None, "--results-json", help="Write results JSON.")


def optimize_command(
    data: Path | None = typer.Argument(None, help="Dataset file."),
    prompt: Path | None = typer.Argument(None, help="Prompt file to improve."),
    model: list[str] = o.MODEL,
    base_url: str | None = o.BASE_URL,
    reasoning_model: str | None = REASONING_MODEL,
    reasoning_base_url: str | None = REASONING_BASE_URL,
    metric: list[str] = o.METRIC,
    judge: str | None = o.JUDGE,
    judge_criteria: Path | None = o.JUDGE_CRITERIA,
    judge_base_url: str | None = o.JUDGE_BASE_URL,
    judge_dimensions: str | None = o.JUDGE_DIMENSIONS,
    judge_repeats: int = o.JUDGE_REPEATS,
    input_field: str | None = o.INPUT_FIELD,
    output_field: str | None = o.OUTPUT_FIELD,
    strategy: str = STRATEGY,
    per_model: bool = PER_MODEL,
    max_iterations: int = MAX_ITERATIONS,
    max_calls: int | None = MAX_CALLS,
    max_cost: float | None = o.MAX_COST,
    target: float | None = TARGET,
    patience: int = PATIENCE,
    batch_size: int = BATCH_SIZE,
    split: str = SPLIT,
    min_gain: float = MIN_GAIN,
    noise_z: float = NOISE_Z,
    seed: int = o.SEED,
    source_model: str | None = SOURCE_MODEL,
    concurrency: int = o.CONCURRENCY,
    local_parallel: int = o.LOCAL_PARALLEL,
    timeout: float = o.TIMEOUT,
    max_tokens: int = o.MAX_TOKENS,
    reasoning_max_tokens: int = REASONING_MAX_TOKENS,
    temperature: float = o.TEMPERATURE,
    prices: Path | None = o.PRICES,
    no_cache: bool = o.NO_CACHE,
    store: Path | None = o.STORE,
    output: Path | None = OUTPUT,
    results_json: Path | None = RESULTS_JSON,
    json_out: bool = o.JSON_OUT,
    resume: str | None = o.RESUME,
) -> None:
    from assay.cli.run_cmds import _check_output, _services
    from assay.data.datasets import FieldMapping
    from assay.optimize.config import Acceptance, OptimizeConfig, StopRules

    for path in (output, results_json):
        _check_output(path)
    services = _services(store, prices, no_cache)
    engine = o.engine_config(
        concurrency=concurrency,
        timeout=timeout,
        no_cache=no_cache,
        local_parallel=local_parallel,
        max_cost=max_cost,
        max_calls=max_calls,
    )
    if resume:
        cfg = _resumed(resume, per_model, services, engine)
    else:
        data_path, prompt_path, models = _require(data, prompt, model, base_url, per_model)
        cfg = OptimizeConfig(
            data=str(data_path),
            prompt=str(prompt_path),
            model=models[0],
            reasoning_model=_reasoner(reasoning_model, reasoning_base_url),
            mapping=FieldMapping(input_field=input_field, output_field=output_field),
            scoring=o.scoring_config(
                metric, judge, judge_criteria, judge_base_url, judge_dimensions, judge_repeats
            ),
            params=o.generation_params(max_tokens, temperature, seed),
            reasoning_max_tokens=reasoning_max_tokens,
            strategy=strategy,
            split=_split(split, seed),
            batch_size=batch_size,
            acceptance=Acceptance(min_gain=min_gain, noise_z=noise_z),
            stop=StopRules(max_iterations=max_iterations, target=target, patience=patience),
            engine=engine,
            source_model=source_model,
            seed=seed,
        )
    if per_model:
        _optimize_per_model(cfg, models, services, output, results_json, json_out)
        return
    _optimize(cfg, services, resume, output, results_json, json_out)


def _resumed(
    run_id: str, per_model: bool, services: Services, engine: EngineConfig
) -> OptimizeConfig:
    from assay.errors import UserInputError
    from assay.optimize.loop import resume_config

    if per_model:
        raise UserInputError(
            "--per-model cannot be resumed as a whole",
            "resume each model's run on its own: assay optimize --resume RUN",
        )
    cfg = resume_config(services.store, run_id)
    return cfg.model_copy(update={"engine": o.resumed_engine(cfg.engine, engine)})


def _require(
    data: Path | None,
    prompt: Path | None,
    model: list[str],
    base_url: str | None,
    per_model: bool,
) -> tuple[Path, Path, list[ModelConfig]]:
    from assay.errors import UserInputError
    from assay.providers.specs import resolve_model

    if data is None or prompt is None:
        raise UserInputError("assay optimize needs DATA and PROMPT", "see assay optimize --help")
    if not model:
        raise UserInputError("assay optimize needs a model", "pass -m PROVIDER/MODEL")
    if len(model) > 1 and not per_model:
        raise UserInputError(
            "assay optimize takes one -m model",
            "add --per-model to optimize a prompt for each model and compare them",
        )
    return data, prompt, [resolve_model(m, base_url=base_url) for m in model]


def _reasoner(spec: str | None, base_url: str | None) -> ModelConfig | None:
    from assay.providers.specs import resolve_model

    return resolve_model(spec, base_url=base_url) if spec else None


def _split(text: str, seed: int) -> SplitConfig:
    from pydantic import ValidationError

    from assay.errors import UserInputError
    from assay.optimize.config import SplitConfig

    try:
        train, val, test = (float(x) for x in text.split(","))
        return SplitConfig(train=train, val=val, test=test, seed=seed)
    except (ValueError, ValidationError):
        raise UserInputError(
            f"--split {text!r} is not three fractions summing to 1", "e.g. --split 0.5,0.2,0.3"
        ) from None


def _optimize(
    cfg: OptimizeConfig,
    services: Services,
    resume: str | None,
    output: Path | None,
    results_json: Path | None,
    as_json: bool,
) -> None:
    import asyncio

    from assay.cli import optimize_render as render
    from assay.optimize import loop

    prepared = loop.prepare(cfg)
    if resume:
        loop.check_resumable(prepared, services.store, resume)
    run_id = resume or loop.start(prepared, services)
    if not as_json:
        render.preflight(prepared, services.prices, run_id)
    try:
        result = asyncio.run(
            loop.optimize(prepared, services, run_id, render.ConsoleReporter(quiet=as_json), output)
        )
    except KeyboardInterrupt:
        services.store.set_status(run_id, "interrupted")
        from assay.errors import AssayError

        raise AssayError(
            f"Interrupted; every finished iteration is saved in run {run_id}",
            f"continue with: assay optimize --resume {run_id}",
        ) from None
    if results_json is not None:
        results_json.write_text(result.to_json() + "\n", encoding="utf-8")
    render.summary(result, output, as_json)


def _optimize_per_model(
    cfg: OptimizeConfig,
    models: list[ModelConfig],
    services: Services,
    output: Path | None,
    results_json: Path | None,
    as_json: bool,
) -> None:
    import asyncio

    from assay.cli import optimize_render as render
    from assay.optimize import per_model

    configs = per_model.per_model_configs(cfg, models)

    def reporter(label: str) -> _LabelledReporter:
        if not as_json:
            render.err_console.print(f"[bold]Optimizing for {label}[/bold]")
        return _LabelledReporter(render.ConsoleReporter(quiet=as_json), label)

    report = asyncio.run(per_model.optimize_per_model(configs, services, reporter, output))
    if results_json is not None:
        results_json.write_text(report.to_json() + "\n", encoding="utf-8")
    _per_model_summary(report, as_json)


class _LabelledReporter:
    """Progress lines that say which model's loop they belong to."""

    def __init__(self, inner: _Reporter, label: str) -> None:
        self.inner = inner
        self.label = label

    def phase(self, text: str) -> None:
        self.inner.phase(f"{self.label}: {text}")

    def iteration(self, record: IterationRecord) -> None:
        self.inner.iteration(record)


class _Reporter(Protocol):
    def phase(self, text: str) -> None: ...

    def iteration(self, record: IterationRecord) -> None: ...


def _per_model_summary(report: PerModelReport, as_json: bool) -> None:
    from rich.text import Text

    from assay.cli import render
    from assay.optimize.per_model import as_run_report

    if as_json:
        print(report.to_json())
        return
    for m in report.models:
        sig = "significant" if m.gain.significant else "not significant"
        written = f"; best prompt -> {m.output}" if m.output else ""
        render.console.print(
            Text(
                f"{m.label}: test {render.num(m.baseline_test.mean, '{:.3f}')} -> "
                f"{render.num(m.final_test.mean, '{:.3f}')} ({sig}), "
                f"{m.iterations} iterations, run {m.run_id}{written}"
            )
        )
    render.console.print(render.models_table(report.variants, report.metric))
    if report.comparisons:
        render.console.print(render.comparisons_table(as_run_report(report)))
    fronts = (("$/1k", report.pareto_quality_cost), ("p50", report.pareto_quality_latency))
    for axis, front in fronts:
        render.console.print(Text(f"Pareto front (quality vs {axis}): {', '.join(front) or '–'}"))
    render.console.print(Text(f"Recommendation: {report.recommendation}"))
    render.console.print(
        Text("Each model is scored with its own best prompt on the same test rows.")
    )
