"""``assay run``: parse the flags -> the benchmark job -> render."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from assay.cli import options as o
from assay.cli.lazy_help import lazy_help, metrics_section

if TYPE_CHECKING:
    from assay.benchmark.config import RunConfig
    from assay.engine.engine import EngineConfig
    from assay.jobs import BenchmarkJob

RUN_HELP = """Benchmark models on your dataset with your prompt, and report a comparison.

Every response is scored (reference metrics and/or an LLM judge with your rubric), with
real token usage, $ per 1,000 requests, latency p50/p95, paired significance between models
and a recommendation. Everything is recorded in the run store (.assay/).

[bold]Examples[/bold]

  assay run --demo                                    # bundled data, embedded model
  assay run reviews.jsonl prompt.md -m local/smollm2 -m openai/gpt-4o-mini --metric label
  assay run qa.jsonl prompt.md --config models.yaml --judge openai/gpt-4o-mini \\
      --judge-criteria rubric.md --max-cost 2 -o results.json
  assay run --resume 20261128-101500-a1b2c3          # continue an interrupted run
  assay run --resume 20261128-101500-a1b2c3 --max-cost 5   # ... with a higher budget

Give two prompt files to compare prompts on the same models. A resume keeps the run's own
models, prompts, data and prices; only --max-cost and --concurrency may change.
"""


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        cls=lazy_help(lambda: RUN_HELP + "\n" + metrics_section()),
        short_help="Benchmark models on your dataset with your prompt.",
    )(run_command)


@dataclass
class RunArgs:
    data: Path | None = typer.Argument(
        None, help="Dataset: JSONL (messages, Alpaca, ShareGPT, flat records) or CSV."
    )
    prompts: list[Path] | None = typer.Argument(
        None, help="Prompt file(s): system prompt or a template with {{field}} slots."
    )
    repeats: int = typer.Option(
        1, "--repeats", min=1, max=1000, help="Responses per sample and model (at most 1000)."
    )
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use the first N rows only.")
    gpu_cost_per_hour: float | None = typer.Option(
        None, "--gpu-cost-per-hour", min=0, help="Estimate self-hosting $/1k for local models."
    )
    output: Path | None = typer.Option(None, "-o", "--output", help="Write results JSON here.")
    json_out: bool = o.JSON_OUT
    resume: str | None = typer.Option(
        None, "--resume", help="Continue an interrupted run (same data; may raise --max-cost)."
    )
    demo: bool = typer.Option(False, "--demo", help="Run the bundled demo (no key needed).")


@dataclass
class RunFlags:
    args: RunArgs
    models: o.ModelOptions
    scoring: o.ScoringOptions
    data: o.DataOptions
    generation: o.GenerationOptions
    engine: o.EngineOptions
    where: o.StoreOptions


@o.grouped
def run_command(flags: RunFlags) -> None:
    _execute(_job(flags), flags.args.json_out)


def _job(flags: RunFlags) -> BenchmarkJob:
    from assay.jobs import BenchmarkJob, Outputs

    args, engine = flags.args, flags.engine
    outputs = Outputs(results=args.output)
    if args.resume:
        return BenchmarkJob.resume(flags.where.session(), args.resume, engine.changes(), outputs)
    session = flags.where.session(use_cache=not engine.no_cache)
    config = _demo_config(args, engine.config()) if args.demo else _config(flags)
    return BenchmarkJob.prepare(session, config, outputs)


def _config(flags: RunFlags) -> RunConfig:
    from assay.benchmark.config import RunConfig
    from assay.errors import UserInputError

    args = flags.args
    if args.data is None or not args.prompts:
        raise UserInputError("assay run needs DATA and PROMPT", "or try: assay run --demo")
    return RunConfig(
        data=str(args.data),
        prompts=[str(p) for p in args.prompts],
        models=flags.models.resolve(),
        mapping=flags.data.mapping(),
        scoring=flags.scoring.config(),
        params=flags.generation.params(),
        repeats=args.repeats,
        engine=flags.engine.config(),
        seed=flags.generation.seed,
        limit=args.limit,
        gpu_cost_per_hour=args.gpu_cost_per_hour,
    )


def _demo_config(args: RunArgs, engine: EngineConfig) -> RunConfig:
    from assay.benchmark.config import RunConfig
    from assay.data import demo_path
    from assay.evaluation.config import ScoringConfig
    from assay.providers.specs import resolve_model
    from assay.records import GenerationParams

    return RunConfig(
        data=str(demo_path("sentiment.jsonl")),
        prompts=[
            str(demo_path("sentiment_prompt.md")),
            str(demo_path("sentiment_prompt_terse.md")),
        ],
        models=[resolve_model("local/smollm2")],
        scoring=ScoringConfig(metrics=["label"]),
        params=GenerationParams(max_tokens=12, temperature=0.0, seed=0),
        engine=engine,
        limit=args.limit or 60,
        gpu_cost_per_hour=args.gpu_cost_per_hour,
    )


def _execute(job: BenchmarkJob, as_json: bool) -> None:
    from assay.cli import render
    from assay.cli.progress import RunProgress
    from assay.errors import AssayError

    if not as_json:
        render.preflight(job.plan, job.estimate(), job.run_id)
    with RunProgress(job.plan, job.completed(), quiet=as_json) as progress:
        report = job.execute(progress)
    render.run_report(report, as_json=as_json)
    if report.status == "failed":  # e.g. a 401: the report is printed, then one error line
        raise AssayError(f"Run {report.run_id} failed: {report.stopped_reason}")
