"""``assay optimize``: parse the flags -> the optimize job -> render."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from assay.cli import options as o
from assay.cli.lazy_help import lazy_help, metrics_section

if TYPE_CHECKING:
    from assay.cli.optimize_render import ConsoleReporter
    from assay.jobs import OptimizeJob, Outputs, PerModelOptimizeJob
    from assay.optimizer.config import OptimizeConfig, SplitConfig
    from assay.optimizer.loop import Prepared
    from assay.optimizer.records import IterationRecord
    from assay.records import ModelConfig

OPTIMIZE_HELP = """Optimize a prompt for one model: evaluate, diagnose, rewrite, verify.

The data is split (seeded, stratified by label) into train / val / test. The loop sees only
train; a rewrite is kept only if it clears a bar on val that grows with the candidates tried
(false accepts at most --alpha per run); the baseline and the final prompt are scored once on
test, with a paired significance test. The prompt written to -o is exactly the one whose test
score is printed.

[bold]Examples[/bold]

  assay optimize reviews.jsonl prompt.md -m local/smollm2 --metric label -o best.md
  assay optimize notes.jsonl prompt.md -m openrouter/meta-llama/llama-3.1-8b-instruct \\
      --judge openrouter/qwen/qwen3-8b --judge-criteria rubric.md \\
      --reasoning-model openai/gpt-4o-mini --max-cost 5 -o best.md
  assay optimize --resume 20261128-101500-a1b2c3 --max-calls 2000 -o best.md

With no --reasoning-model the task model also writes the rewrites: a small local model is
a weak reasoner, so expect many rejected proposals (each with its reason) and modest gains.
A resume keeps the run's own config; only --max-cost, --max-calls and --concurrency may change.

[bold]Pipeline mode[/bold]: --pipeline agent.py:answer optimizes a prompt used inside your
own code; answer(prompt, sample, client) runs for each sample, its calls through client go to
the -m model, and the judge and the diagnosis see its trace. Importing the file runs its
code. See docs/pipelines.md.

[bold]Several models[/bold]: -m A -m B --per-model optimizes a prompt for each model (one run
each, the budget split evenly), then compares every model with its own best prompt on test.
"""


def _help() -> str:
    from assay.optimizer.strategies import strategy_menu

    strategies = (
        "[bold]Strategies[/bold] (--strategy; every candidate is accepted only on val)\n\n"
        + strategy_menu()
    )
    return "\n".join([OPTIMIZE_HELP, strategies, "", metrics_section()])


def register(app: typer.Typer) -> None:
    app.command(
        "optimize",
        cls=lazy_help(_help),
        short_help="Optimize a prompt for a model: evaluate, diagnose, rewrite, verify.",
    )(optimize_command)


@dataclass
class OptimizeArgs:
    data: Path | None = typer.Argument(None, help="Dataset file.")
    prompt: Path | None = typer.Argument(None, help="Prompt file to improve.")
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Use the first N rows only (before the split)."
    )
    reasoning_model: str | None = typer.Option(
        None, "--reasoning-model", help="Model that diagnoses and rewrites (default: -m)."
    )
    reasoning_base_url: str | None = typer.Option(
        None, "--reasoning-base-url", help="OpenAI-compatible URL for the reasoning model."
    )
    reasoning_max_tokens: int = typer.Option(
        1024, "--reasoning-max-tokens", min=64, help="Output cap for each rewrite."
    )
    source_model: str | None = typer.Option(
        None, "--source-model", help="Model family the prompt was written for."
    )
    per_model: bool = typer.Option(
        False, "--per-model", help="Optimize for each -m model, then compare them on test."
    )
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the best prompt here.")
    results_json: Path | None = typer.Option(None, "--results-json", help="Write results JSON.")
    json_out: bool = o.JSON_OUT
    resume: str | None = typer.Option(
        None, "--resume", help="Continue an interrupted run (may raise --max-cost/--max-calls)."
    )


@dataclass
class SearchOptions:
    strategy: str = typer.Option(
        "auto", "--strategy", help="Search strategy: auto (default) or one of those listed above."
    )
    max_iterations: int = typer.Option(5, "--max-iterations", min=0, help="Rewrite rounds.")
    max_calls: int | None = typer.Option(
        None, "--max-calls", min=1, help="Hard call budget (a resume may raise it)."
    )
    target: float | None = typer.Option(
        None, "--target", min=0, max=1, help="Stop when val reaches this score."
    )
    patience: int = typer.Option(3, "--patience", min=1, help="Stop after N rounds without gain.")
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Train rows per round.")
    split: str = typer.Option("0.5,0.2,0.3", "--split", help="train,val,test fractions.")
    min_gain: float = typer.Option(
        0.01, "--min-gain", min=0, help="Smallest val gain that counts as better."
    )
    alpha: float = typer.Option(
        0.05,
        "--alpha",
        min=0.0001,
        max=0.5,
        help="Chance per run of accepting a candidate no better than the best prompt.",
    )

    def split_config(self, seed: int) -> SplitConfig:
        from pydantic import ValidationError

        from assay.errors import UserInputError
        from assay.optimizer.config import SplitConfig

        try:
            train, val, test = (float(x) for x in self.split.split(","))
            return SplitConfig(train=train, val=val, test=test, seed=seed)
        except (ValueError, ValidationError):
            raise UserInputError(
                f"--split {self.split!r} is not three fractions summing to 1",
                "e.g. --split 0.5,0.2,0.3",
            ) from None


@dataclass
class OptimizeFlags:
    args: OptimizeArgs
    models: o.ModelOptions
    scoring: o.ScoringOptions
    pipeline: o.PipelineOptions
    search: SearchOptions
    data: o.DataOptions
    generation: o.GenerationOptions
    engine: o.EngineOptions
    where: o.StoreOptions


@o.grouped
def optimize_command(flags: OptimizeFlags) -> None:
    from assay.jobs import OptimizeJob, Outputs, PerModelOptimizeJob

    args = flags.args
    outputs = Outputs(prompt=args.output, results=args.results_json)
    if args.resume:
        _refuse_per_model_resume(args.per_model)
        _run(_resumed(flags, outputs), args.json_out)
        return
    config, models = _config(flags)
    session = flags.where.session(use_cache=not flags.engine.no_cache)
    if args.per_model:
        _run_per_model(PerModelOptimizeJob.prepare(session, config, models, outputs), args)
        return
    _run(OptimizeJob.prepare(session, config, outputs), args.json_out)


def _resumed(flags: OptimizeFlags, outputs: Outputs) -> OptimizeJob:
    from assay.jobs import OptimizeJob

    changes = flags.engine.changes(max_calls=flags.search.max_calls)
    return OptimizeJob.resume(flags.where.session(), flags.args.resume or "", changes, outputs)


def _refuse_per_model_resume(per_model: bool) -> None:
    from assay.errors import UserInputError

    if per_model:
        raise UserInputError(
            "--per-model cannot be resumed as a whole",
            "resume each model's run on its own: assay optimize --resume RUN",
        )


def _config(flags: OptimizeFlags) -> tuple[OptimizeConfig, list[ModelConfig]]:
    from assay.optimizer.config import Acceptance, OptimizeConfig, StopRules

    args, search, seed = flags.args, flags.search, flags.generation.seed
    data, prompt, models = _require(flags)
    config = OptimizeConfig(
        data=str(data),
        prompt=str(prompt),
        model=models[0],
        reasoning_model=_reasoner(args),
        mapping=flags.data.mapping(),
        limit=args.limit,
        scoring=flags.scoring.config(),
        params=flags.generation.params(),
        reasoning_max_tokens=args.reasoning_max_tokens,
        strategy=search.strategy,
        split=search.split_config(seed),
        batch_size=search.batch_size,
        acceptance=Acceptance(min_gain=search.min_gain, alpha=search.alpha),
        stop=StopRules(
            max_iterations=search.max_iterations, target=search.target, patience=search.patience
        ),
        engine=flags.engine.config(max_calls=search.max_calls),
        source_model=args.source_model,
        seed=seed,
        pipeline=flags.pipeline.pipeline,
    )
    return config, models


def _require(flags: OptimizeFlags) -> tuple[Path, Path, list[ModelConfig]]:
    from assay.errors import UserInputError

    args = flags.args
    if args.data is None or args.prompt is None:
        raise UserInputError("assay optimize needs DATA and PROMPT", "see assay optimize --help")
    if not flags.models.model:
        raise UserInputError("assay optimize needs a model", "pass -m PROVIDER/MODEL")
    if len(flags.models.model) > 1 and not args.per_model:
        raise UserInputError(
            "assay optimize takes one -m model",
            "add --per-model to optimize a prompt for each model and compare them",
        )
    return args.data, args.prompt, flags.models.resolve()


def _reasoner(args: OptimizeArgs) -> ModelConfig | None:
    from assay.providers.specs import resolve_model

    if not args.reasoning_model:
        return None
    return resolve_model(args.reasoning_model, base_url=args.reasoning_base_url)


def _run(job: OptimizeJob, as_json: bool) -> None:
    from assay.cli import optimize_render as render

    if not as_json:
        if job.prepared.pipeline is not None:
            typer.echo(
                "Pilot: running the pipeline on a few val rows to measure its calls", err=True
            )
        render.preflight(job.prepared, job.estimate(), job.run_id)
        judge_fit(job.prepared)
    result = job.execute(render.ConsoleReporter(quiet=as_json))
    render.summary(result, job.outputs.prompt, as_json)


def judge_fit(prepared: Prepared) -> None:
    """Warn before any call when the judge's largest request would not fit its context."""
    from assay.cli.render import warn
    from assay.scoring.judge_fit import judge_fit_warnings

    config = prepared.config
    samples = prepared.dataset.samples
    for line in judge_fit_warnings(config.scoring.judge, samples, config.params.max_tokens):
        warn(line)


def _run_per_model(job: PerModelOptimizeJob, args: OptimizeArgs) -> None:
    from assay.cli import optimize_render as render

    def reporter(label: str) -> _LabelledReporter:
        if not args.json_out:
            render.err_console.print(f"[bold]Optimizing for {label}[/bold]")
        return _LabelledReporter(render.ConsoleReporter(quiet=args.json_out), label)

    render.per_model_summary(job.execute(reporter), args.json_out)


class _LabelledReporter:
    """Progress lines that say which model's loop they belong to."""

    def __init__(self, inner: ConsoleReporter, label: str) -> None:
        self.inner = inner
        self.label = label

    def phase(self, text: str) -> None:
        self.inner.phase(f"{self.label}: {text}")

    def iteration(self, record: IterationRecord) -> None:
        self.inner.iteration(record)
