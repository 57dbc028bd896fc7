"""The ``assay run`` orchestrator: prepare -> start -> execute -> analyse, all in the run store.

Jobs (``assay.jobs``) call these steps; nothing here knows about the CLI.
"""

from __future__ import annotations

from assay.analysis.results import RunReport
from assay.analysis.run_analysis import analyse, save_endpoint_use
from assay.benchmark.adaptive import execute_adaptive
from assay.benchmark.config import InlinePrompt, RunConfig
from assay.benchmark.plan import RunPlan, build_variants
from assay.benchmark.run_batch import check_batch
from assay.data.datasets import load_dataset
from assay.data.prompts import PromptTemplate, load_prompt
from assay.engine.engine import Engine
from assay.errors import UserInputError
from assay.evaluation.batch_execute import execute_with_batches
from assay.evaluation.config import primary_metric
from assay.evaluation.execute import NoProgress, ProgressSink, RunContext, execute, show_limit
from assay.evaluation.scoring import build_scorer
from assay.evaluation.session import Session
from assay.pipeline.executor import PipelineRunner
from assay.pipeline.loader import Pipeline, load_pipeline
from assay.providers.specs import check_keys
from assay.records import ModelConfig
from assay.scoring.metrics import build_metrics, check_metrics_against_dataset
from assay.store.run_record import StoredRun, StoredShard, StoredVariant
from assay.store.runstore import RunRecord, RunStore


def prepare(config: RunConfig) -> RunPlan:
    """Load and validate everything before any call: data, prompts, metrics, keys."""
    if not config.scoring.metrics and config.scoring.judge is None:
        raise UserInputError("Nothing to score with", "add --metric NAME or --judge SPEC")
    # Its rows, parsed by this one pass, serve the later ones when few (datasets.KeepRows).
    dataset = load_dataset(config.data, config.mapping, use_first=config.limit)
    prompts = [_prompt(p) for p in config.prompts]
    for prompt in prompts:
        prompt.check_slots(dataset)
    metrics = build_metrics(config.scoring.metrics, dataset.iter_samples())
    check_metrics_against_dataset(metrics, dataset.has_reference)
    judge_models = config.scoring.judge.models if config.scoring.judge else []
    check_keys([*config.models, *judge_models])
    check_batch(config)
    check_shard(config)
    config, pipeline = _with_pipeline(config)
    variants = build_variants(config.models, prompts)
    check_baseline(config.decision.baseline, [v.key for v in variants])
    return RunPlan(
        config=config,
        dataset=dataset,
        variants=variants,
        metrics=metrics,
        primary_metric=primary_metric(config.scoring, metrics),
        pipeline=pipeline,
    )


def _with_pipeline(config: RunConfig) -> tuple[RunConfig, Pipeline | None]:
    """The user's pipeline, imported now (its code runs before any call), with its spec made
    absolute and its file's current hash in the config."""
    if config.pipeline is None:
        return config, None
    if any(m.batch for m in config.models):
        raise UserInputError(
            "--pipeline cannot run in batch mode",
            "a pipeline's calls wait on each other's replies: drop --batch",
        )
    pipeline = load_pipeline(config.pipeline)
    update = {"pipeline": pipeline.spec, "pipeline_sha256": pipeline.sha256}
    return config.model_copy(update=update), pipeline


def _prompt(source: str | InlinePrompt) -> PromptTemplate:
    if isinstance(source, str):
        return load_prompt(source)
    return PromptTemplate.from_text(source.text.replace("\r\n", "\n").strip(), source.name)


def check_shard(config: RunConfig) -> None:
    """An adaptive run's rounds decide on the rows of all shards: it cannot be split."""
    if config.shard is not None and config.decision.adaptive:
        raise UserInputError(
            "--shard and --adaptive do not mix: each round decides on every row of the run",
            "drop --adaptive, or --shard",
        )


def check_baseline(baseline: str | None, keys: list[str]) -> None:
    if baseline is not None and baseline not in keys:
        raise UserInputError(
            f"--baseline {baseline} is not a variant of this run", f"one of: {', '.join(keys)}"
        )


def stored_run(plan: RunPlan, session: Session) -> StoredRun:
    """The run's record, with every model's current price pinned (a resume charges the same)."""
    config = plan.config.priced(session.prices)
    judge = config.scoring.judge
    return StoredRun(
        kind="run",
        data=config.data,
        dataset_sha256=plan.dataset.content_hash,
        dataset_has_reference=plan.dataset.has_reference,
        n_samples=plan.n_samples,
        primary_metric=plan.primary_metric,
        repeats=config.repeats,
        seed=config.seed,
        models=[m.spec for m in config.models],
        judges=[m.spec for m in judge.models] if judge else [],
        variants=[
            StoredVariant(
                key=v.key,
                model=v.model.spec,
                prompt_hash=v.prompt.hash,
                batch=v.model.batch,
                batch_discount=_batch_discount(v.model, session),
            )
            for v in plan.variants
        ],
        gpu_cost_per_hour=config.gpu_cost_per_hour,
        local_parallel=config.engine.local_parallel,
        mapping=config.mapping.model_dump(mode="json"),
        job=config.model_dump(mode="json"),
        shard=_stored_shard(plan),
    )


def _stored_shard(plan: RunPlan) -> StoredShard | None:
    shard = plan.config.shard
    if shard is None:
        return None
    return StoredShard(index=shard.index, count=shard.count, rows_all_shards=plan.n_rows_all_shards)


def _batch_discount(model: ModelConfig, session: Session) -> float | None:
    price = session.prices.lookup(model) if model.batch else None
    return price.batch_discount if price is not None else None


def start_run(plan: RunPlan, session: Session) -> str:
    for variant in plan.variants:
        session.store.save_text("prompt", variant.prompt.text, variant.prompt.hash)
    run_id = session.store.create_run(stored_run(plan, session))
    session.store.save_samples(run_id, plan.iter_samples())
    return run_id


def stored_config(run: RunRecord) -> RunConfig:
    """The config a benchmark run started with (prices pinned), for a resume."""
    if run.kind != "run":
        raise UserInputError(f"Run {run.id} is an {run.kind} run", f"use assay {run.kind} --resume")
    return RunConfig.model_validate(run.config.job)


def check_resumable(plan: RunPlan, run: RunRecord) -> None:
    if run.config.dataset_sha256 != plan.dataset.content_hash:
        raise UserInputError(
            f"{plan.config.data} changed since run {run.id} started",
            "resume needs the same data; start a new run instead",
        )
    started_with = stored_config(run).pipeline_sha256
    if plan.pipeline is not None and started_with != plan.pipeline.sha256:
        raise UserInputError(
            f"The pipeline {plan.pipeline.spec} changed since run {run.id} started",
            "resume needs the same pipeline code; start a new run instead",
        )


def _engine(plan: RunPlan, session: Session, run_id: str) -> Engine:
    return Engine(
        plan.config.engine,
        prices=session.prices,
        cache=session.cache,
        spent_before=session.store.spent(run_id),  # the budget is for the whole run
    )


def _context(
    plan: RunPlan, session: Session, run_id: str, engine: Engine, progress: ProgressSink
) -> RunContext:
    scorer = build_scorer(plan.config.scoring, plan.metrics, engine)
    pipeline = None
    if plan.pipeline is not None:
        hidden = [plan.dataset.reference_field] if plan.dataset.reference_field else []
        pipeline = PipelineRunner(plan.pipeline, engine, hidden)
    show_limit(progress, engine)
    return RunContext(run_id, session.store, engine, scorer, progress, pipeline=pipeline)


async def execute_pilot(plan: RunPlan, session: Session, run_id: str) -> None:
    """Run the pipeline on the first rows under every variant, saved as the run's own results:
    the estimate is measured on them, and the run then skips them."""
    engine = _engine(plan, session, run_id)
    async with engine:
        ctx = _context(plan, session, run_id, engine, NoProgress())
        try:
            await execute(iter(plan.pilot_items()), ctx, session.store.completed_keys(run_id))
        finally:
            session.store.save_spent(run_id, engine.ledger.snapshot())


async def execute_run(
    plan: RunPlan, session: Session, run_id: str, progress: ProgressSink | None = None
) -> RunReport:
    """Execute what is not yet done, then analyse everything the store holds for the run."""
    store = session.store
    done = store.completed_keys(run_id)
    engine = _engine(plan, session, run_id)
    async with engine:
        ctx = _context(plan, session, run_id, engine, progress or NoProgress())
        try:
            if plan.config.decision.adaptive:
                outcome = await execute_adaptive(plan, ctx, done)
            elif any(m.batch for m in plan.config.models):
                outcome = await execute_with_batches(plan.items(), ctx, done, plan.config.batch)
            else:
                outcome = await execute(plan.items(), ctx, done)
        finally:  # calls paid for items that were never saved count too
            store.save_spent(run_id, engine.ledger.snapshot())
            save_endpoint_use(store, run_id, engine.endpoint_use())
    status = "complete" if outcome.stopped_reason is None else "stopped"
    if outcome.fatal is not None:
        status = "failed"
    reason = outcome.stopped_reason
    if status == "complete" and (all_failed := _all_failed(store, run_id)) is not None:
        status, reason = "failed", all_failed
    report = analyse(store, run_id, status, reason)
    store.set_status(run_id, status, report.model_dump(mode="json", by_alias=True))
    return report


def _all_failed(store: RunStore, run_id: str) -> str | None:
    """A run with calls and not one answer measured nothing: it failed, and says why."""
    tally = store.error_tally(run_id)
    if tally.calls == 0 or tally.failed < tally.calls:
        return None
    return (
        f"all {tally.calls} calls failed; the most common error "
        f"({tally.most_common_count} of {tally.calls}): {tally.most_common}"
    )
