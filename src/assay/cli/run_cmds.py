"""``assay run``: parse the flags -> the benchmark job -> render."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from assay.cli import options as o
from assay.cli.lazy_help import lazy_help, metrics_section

if TYPE_CHECKING:
    from assay.analysis.gate import GateConfig, GateResult
    from assay.analysis.results import RunReport
    from assay.benchmark.config import RunConfig
    from assay.engine.engine import EngineConfig
    from assay.jobs import BenchmarkJob
    from assay.jobs.gate import RunGate

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
  assay run                                           # the eval in ./assay.yaml (assay init)
  assay run --eval ci.yaml --limit 50 --fail-under 0.8 --junit junit.xml
  assay run qa.jsonl prompt.md -m openai/gpt-4o-mini --metric exact --batch   # half price
  assay run qa.jsonl prompt.md -m openai/gpt-4o-mini --metric exact --concurrency auto
  assay run qa.jsonl prompt.md -m compat/qwen2.5-7b --metric exact \\
      --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1   # two replicas
  assay run qa.jsonl prompt.md -m openai/gpt-4o-mini --metric exact --shard 2/3   # machine 2

--concurrency auto finds how many calls each endpoint takes: it starts at 4, grows while
replies succeed at a flat latency and backs off on 429/503 (honouring Retry-After), up to 256
in flight (auto:N sets that ceiling). A repeated --base-url lists replicas of one model: each
call goes to the least busy; one that fails to connect is taken out for a while and its calls
go to the others. Both show per endpoint in the report (assay show).

--batch sends the requests through the providers' batch APIs (OpenAI, Anthropic): about
half the price, answers within 24 hours; if the process stops, --resume collects the batches
already sent instead of paying for them again.

--shard i/n evaluates only shard i of n (rows split by a hash of sample id and seed): run one
shard per machine, then join the shard runs with assay merge; the merged run reports what one
unsharded run reports. See docs/scale.md.

--pipeline agent.py:answer benchmarks a prompt inside your own code (an agent with tools,
retrieval, several calls): answer(prompt, sample, client) runs for each sample, and every call
it makes through client goes to the run's model, cache and budget, metered. Importing the
file runs its code. The plan's calls come from a pilot on the first rows. See
docs/pipelines.md.

Give two prompt files to compare prompts on the same models. A resume keeps the run's own
models, prompts, data and prices; only --max-cost and --concurrency may change.

An eval file (./assay.yaml, or --eval FILE) holds the whole eval; a flag given on the command
line replaces that key of the file (-m/--config replace its models). Gate: exit code 3 when
--fail-under or --fail-if-worse-than fails (2: bad input, 1: the run failed).
"""


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        cls=lazy_help(lambda: RUN_HELP + "\n" + metrics_section()),
        short_help="Benchmark models on your dataset with your prompt.",
    )(run_command)


def _shard(value: str | None) -> str | None:
    """``--shard i/n``, checked when the flag is read."""
    if value is None:
        return None
    from pydantic import ValidationError

    from assay.shards import Shard

    try:
        return str(Shard.model_validate(value))
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


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
    eval_file: Path | None = typer.Option(
        None,
        "--eval",
        help="The eval file (default: ./assay.yaml when no DATA is given); flags override it.",
    )
    shard: str | None = typer.Option(
        None,
        "--shard",
        metavar="i/n",
        callback=_shard,
        help="Evaluate only shard i of n (rows split by a hash of sample id and seed), e.g. "
        "one per machine; join the shard runs with assay merge. See docs/scale.md.",
    )


@dataclass
class RunFlags:
    args: RunArgs
    models: o.ModelOptions
    scoring: o.ScoringOptions
    pipeline: o.PipelineOptions
    data: o.DataOptions
    generation: o.GenerationOptions
    engine: o.EngineOptions
    batch: o.BatchOptions
    decision: o.DecisionOptions
    gate: o.GateOptions
    where: o.StoreOptions


@o.grouped
def run_command(flags: RunFlags) -> None:
    from assay.analysis.gate import GateFailed, failure_line
    from assay.errors import AssayError

    job, gate = _job(flags)
    report = _execute(job, flags.args.json_out)
    result = gate.evaluate(job, report)
    if result.checks:
        _gate_lines(result, to_stderr=flags.args.json_out)
    if report.status == "failed":  # e.g. a 401: the report is printed, then one error line
        raise AssayError(f"Run {report.run_id} failed: {report.stopped_reason}")
    if not result.passed:
        raise GateFailed(failure_line(result))


def _job(flags: RunFlags) -> tuple[BenchmarkJob, RunGate]:
    from assay.jobs import BenchmarkJob, Outputs
    from assay.jobs.gate import RunGate

    args, engine = flags.args, flags.engine
    outputs = Outputs(results=args.output, junit=flags.gate.junit, summary=flags.gate.summary)
    given = o.given_on_command_line()
    if args.resume:
        _refuse_with_resume(args)
        _refuse_batch_flags_with_resume(given)
        session = flags.where.session()
        gate = RunGate.open(session, flags.gate.config())
        job = BenchmarkJob.resume(session, args.resume, engine.changes(), outputs)
        gate.check_plan(job.plan)
        return job, gate
    session = flags.where.session(use_cache=not engine.no_cache)
    config, gate_config = _configs(flags, given)
    config = flags.batch.apply(config)
    gate = RunGate.open(session, gate_config)
    return BenchmarkJob.prepare(session, config, outputs, before_start=gate.check_plan), gate


def _refuse_with_resume(args: RunArgs) -> None:
    from assay.errors import UserInputError

    if args.eval_file is not None or args.demo:
        raise UserInputError(
            "--resume continues a run with its own settings", "drop --eval and --demo"
        )
    if args.shard is not None:
        raise UserInputError("--resume continues a run with its own shard", "drop --shard")


def _refuse_batch_flags_with_resume(given: frozenset[str]) -> None:
    from assay.errors import UserInputError

    typed = sorted({"batch", "batch_max_requests", "batch_poll"} & given)
    if typed:
        flags = ", ".join("--" + name.replace("_", "-") for name in typed)
        raise UserInputError(
            f"{flags}: a resume keeps the run's own batch settings", f"drop {flags}"
        )


def _configs(flags: RunFlags, given: frozenset[str]) -> tuple[RunConfig, GateConfig]:
    """The run and its gate: from the eval file (flags override it), the demo, or flags."""
    from assay.errors import UserInputError

    args = flags.args
    eval_path = _eval_path(args)
    if args.demo:
        if args.eval_file is not None:
            raise UserInputError("--demo runs the bundled demo", "drop --eval or --demo")
        return _demo_config(args, flags.engine.config()), flags.gate.config()
    if eval_path is not None:
        return _eval_configs(flags, given, eval_path)
    return _config(flags), flags.gate.config()


def _eval_path(args: RunArgs) -> Path | None:
    """``--eval FILE``, else ``./assay.yaml`` when no DATA is given and it exists."""
    from assay.benchmark.eval_load import EVAL_FILE

    if args.eval_file is not None:
        return args.eval_file
    if args.data is None and not args.demo and Path(EVAL_FILE).exists():
        return Path(EVAL_FILE)
    return None


def _eval_configs(
    flags: RunFlags, given: frozenset[str], path: Path
) -> tuple[RunConfig, GateConfig]:
    from dataclasses import asdict

    from assay.benchmark.eval_file import run_config
    from assay.benchmark.eval_load import load_eval
    from assay.cli.eval_flags import MODEL_FLAGS, file_overrides
    from assay.errors import UserInputError

    groups = (flags.args, flags.scoring, flags.pipeline, flags.data, flags.generation, flags.engine)
    values = {k: v for g in (*groups, flags.decision, flags.gate) for k, v in asdict(g).items()}
    overrides = file_overrides(values, given, flags.args.data, flags.args.prompts)
    loaded = load_eval(path, overrides)
    flag_models = bool(set(MODEL_FLAGS) & given)
    if "base_url" in given and not flag_models:
        raise UserInputError("--base-url applies to -m models", "set base_url in the file's models")
    config = run_config(
        loaded.spec,
        path,
        flags.engine.config(),
        models=flags.models.resolve() if flag_models else None,
        gpu_cost_per_hour=flags.args.gpu_cost_per_hour,
    )
    return config, loaded.gate()


def _config(flags: RunFlags) -> RunConfig:
    from assay.benchmark.config import RunConfig
    from assay.errors import UserInputError

    args = flags.args
    if args.data is None or not args.prompts:
        raise UserInputError(
            "assay run needs DATA and PROMPT, or an eval file (./assay.yaml or --eval FILE)",
            "write one with: assay init DATA PROMPT; or try: assay run --demo",
        )
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
        decision=flags.decision.config(flags.models.config),
        pipeline=flags.pipeline.pipeline,
        shard=args.shard,
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
        shard=args.shard,
    )


def _execute(job: BenchmarkJob, as_json: bool) -> RunReport:
    from assay.cli import render
    from assay.cli.progress import RunProgress

    if not as_json:
        if job.plan.pipeline is not None:
            typer.echo(
                "Pilot: running the pipeline on the first rows to measure its calls", err=True
            )
        render.preflight(job.plan, job.estimate(), job.run_id)
    with RunProgress(job.plan, job.completed(), quiet=as_json) as progress:
        report = job.execute(progress)
    render.run_report(report, as_json=as_json)
    return report


def _gate_lines(result: GateResult, to_stderr: bool) -> None:
    """The gate's verdict, one line per check (stderr under --json, so stdout stays JSON)."""
    from assay.analysis.gate import GATE_FAILED_EXIT
    from assay.cli.untrusted import visible

    head = "passed" if result.passed else f"FAILED (exit code {GATE_FAILED_EXIT})"
    lines = [f"Gate {head}"]
    if result.baseline:
        lines.append(f"  compared with baseline run {visible(result.baseline)}")
    for c in result.checks:
        mark = "skip" if c.skipped else ("pass" if c.passed else "FAIL")
        who = f" [{visible(c.variant)}]" if c.variant else ""
        lines.append(f"  {mark}  {c.check}{who}: {visible(c.detail)}")
    typer.echo("\n".join(lines), err=to_stderr)
