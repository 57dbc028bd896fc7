"""The optimization orchestrator: prepare -> baseline -> iterate -> test -> report.

Every iteration is checkpointed in the run store as it completes; a resumed run replays the
checkpoints, reuses every stored evaluation and (through the cache) every reasoning reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from assay.analysis.run_analysis import save_endpoint_use, stored_endpoint_use
from assay.data.datasets import Dataset, load_dataset
from assay.data.prompts import PromptTemplate, load_prompt
from assay.engine.engine import Engine
from assay.errors import BudgetExceeded, UserInputError
from assay.evaluation.config import primary_metric
from assay.evaluation.execute import RunContext
from assay.evaluation.scoring import build_scorer
from assay.evaluation.session import Session
from assay.optimizer.config import OptimizeConfig
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.evaluate import Evaluation, Evaluator
from assay.optimizer.records import (
    IterationRecord,
    OptimizeResult,
    Spend,
    SplitInfo,
    TestScores,
    result_headline,
)
from assay.optimizer.selection import detectable_text, plan
from assay.optimizer.split import Split, split_samples
from assay.optimizer.strategies import STRATEGY_TYPES, Strategy
from assay.optimizer.strategies.common import train_batch
from assay.pipeline.executor import PipelineRunner
from assay.pipeline.loader import Pipeline, load_pipeline
from assay.pipeline.pilot import PILOT_ROWS, PilotMeasure, measure_pilot
from assay.providers.specs import check_keys
from assay.records import Request, Sample, Spent
from assay.scoring.metrics import Metric, build_metrics, check_metrics_against_dataset
from assay.scoring.scorer import JUDGE_SCORE
from assay.scoring.stats import paired_compare
from assay.store.run_record import StoredRun
from assay.store.runstore import RunRecord, RunStore


class Reporter(Protocol):
    def phase(self, text: str) -> None: ...

    def iteration(self, record: IterationRecord) -> None: ...


class SilentReporter:
    def phase(self, text: str) -> None:
        pass

    def iteration(self, record: IterationRecord) -> None:
        pass


@dataclass(frozen=True)
class Prepared:
    config: OptimizeConfig
    dataset: Dataset
    prompt: PromptTemplate
    split: Split
    metrics: list[Metric]
    primary_metric: str  # the key the primary scores are stored under
    pipeline: Pipeline | None = None  # --pipeline: the prompt is evaluated inside user code


def prepare(config: OptimizeConfig) -> Prepared:
    """Everything that can fail on bad input fails here, before any call."""
    if not config.scoring.metrics and config.scoring.judge is None:
        raise UserInputError("Nothing to optimize against", "add --metric NAME or --judge SPEC")
    if config.strategy not in STRATEGY_TYPES:
        raise UserInputError(
            f"Unknown strategy {config.strategy!r}", f"use one of {', '.join(STRATEGY_TYPES)}"
        )
    STRATEGY_TYPES[config.strategy].check_config(config)  # e.g. duel needs a judge
    dataset = load_dataset(config.data, config.mapping, use_first=config.limit)
    dataset = dataset.head(config.limit)
    prompt = load_prompt(config.prompt)
    prompt.check_slots(dataset)
    metrics = build_metrics(config.scoring.metrics, dataset.samples)
    check_metrics_against_dataset(metrics, dataset.has_reference)
    judges = config.scoring.judge.models if config.scoring.judge else []
    check_keys([config.model, config.reasoner, *judges])
    split = split_samples(dataset.samples, config.split)
    pipeline = load_pipeline(config.pipeline) if config.pipeline is not None else None
    if pipeline is not None:  # imported now: its code runs before any call
        update = {"pipeline": pipeline.spec, "pipeline_sha256": pipeline.sha256}
        config = config.model_copy(update=update)
    primary = primary_metric(config.scoring, metrics)
    return Prepared(config, dataset, prompt, split, metrics, primary, pipeline)


def stored_run(prepared: Prepared, session: Session) -> StoredRun:
    """The run's record, with every model's current price pinned (a resume charges the same)."""
    config = prepared.config.priced(session.prices)
    judge = config.scoring.judge
    return StoredRun(
        kind="optimize",
        data=config.data,
        dataset_sha256=prepared.dataset.content_hash,
        dataset_has_reference=prepared.dataset.has_reference,
        n_samples=len(prepared.dataset.samples),
        primary_metric=prepared.primary_metric,
        seed=config.seed,
        models=[config.model.spec],
        judges=[m.spec for m in judge.models] if judge else [],
        split=prepared.split.ids(),
        local_parallel=config.engine.local_parallel,
        mapping=config.mapping.model_dump(mode="json"),
        job=config.model_dump(mode="json"),
    )


def start(prepared: Prepared, session: Session) -> str:
    store = session.store
    store.save_text("prompt", prepared.prompt.text, prepared.prompt.hash)
    run_id = store.create_run(stored_run(prepared, session))
    split_of = {i: name for name, ids in prepared.split.ids().items() for i in ids}
    store.save_samples(run_id, prepared.dataset.samples, split_of)
    return run_id


def stored_config(run: RunRecord) -> OptimizeConfig:
    """The config an optimize run started with (prices pinned), for a resume."""
    if run.kind != "optimize":
        raise UserInputError(f"Run {run.id} is not an optimize run", "use assay run --resume")
    return OptimizeConfig.model_validate(run.config.job)


def check_resumable(prepared: Prepared, run: RunRecord) -> None:
    if run.config.dataset_sha256 != prepared.dataset.content_hash:
        raise UserInputError(
            f"{prepared.config.data} changed since run {run.id} started",
            "resume needs the same data; start a new run instead",
        )
    if run.config.split != prepared.split.ids():
        raise UserInputError(
            "The split differs from the one the run started with",
            "resume with the same --split and --seed",
        )
    started_with = stored_config(run).pipeline_sha256
    if prepared.pipeline is not None and started_with != prepared.pipeline.sha256:
        raise UserInputError(
            f"The pipeline {prepared.pipeline.spec} changed since run {run.id} started",
            "resume needs the same pipeline code; start a new run instead",
        )


async def optimize(
    prepared: Prepared, session: Session, run_id: str, reporter: Reporter | None = None
) -> OptimizeResult:
    """Run (or continue) the loop, score on test, and record the result with the run."""
    reporter = reporter or SilentReporter()
    records = [IterationRecord.model_validate(r) for r in session.store.iterations(run_id)]
    spend_before = _spend_before(session.store, run_id, records)
    spent = Spent(calls=spend_before.calls, cost_usd=spend_before.cost_usd)
    engine = Engine(
        prepared.config.engine, prices=session.prices, cache=session.cache, spent_before=spent
    )
    async with engine:
        try:
            ctx = _context(prepared, session, run_id, engine, spend_before)
            state = await _initial_state(prepared, ctx, records, reporter)
            strategy = STRATEGY_TYPES[prepared.config.strategy]()
            await run_loop(state, ctx, strategy, reporter)
            result = await finish(state, ctx, prepared, reporter)
        finally:  # the budget is for the whole run: what this session used counts on resume
            session.store.save_spent(run_id, engine.ledger.snapshot())
            save_endpoint_use(session.store, run_id, engine.endpoint_use())
    endpoints = stored_endpoint_use(session.store.get_run(run_id).summary)  # every session's
    result = result.model_copy(update={"endpoints": endpoints})
    session.store.set_status(run_id, result.status, result.model_dump(mode="json", by_alias=True))
    return result


def _spend_before(store: RunStore, run_id: str, records: list[IterationRecord]) -> Spend:
    """What earlier sessions used: the last checkpoint, raised to the calls and dollars saved
    with each result since (the final test scoring, or work cut short by Ctrl-C or a kill)."""
    checkpoint = records[-1].spend if records else Spend()
    saved = store.spent(run_id)
    return checkpoint.model_copy(
        update={
            "calls": max(checkpoint.calls, saved.calls),
            "cost_usd": max(checkpoint.cost_usd, saved.cost_usd),
        }
    )


def _context(
    prepared: Prepared, session: Session, run_id: str, engine: Engine, spend_before: Spend
) -> OptimizeContext:
    config = prepared.config
    scorer = build_scorer(config.scoring, prepared.metrics, engine)
    run_ctx = RunContext(
        run_id, session.store, engine, scorer, pipeline=_pipeline(prepared, engine)
    )

    def request_for(prompt: PromptTemplate, sample: Sample) -> Request:
        return Request(messages=prompt.render(sample), params=config.params)

    evaluator = Evaluator(run_ctx, config.model, request_for)
    return OptimizeContext(
        config,
        run_id,
        session.store,
        engine,
        evaluator,
        prepared.split,
        scoring_text(config, prepared.dataset),
        spend_before,
        task_calls=lambda: evaluator.task_calls_per_item,
    )


def _pipeline(prepared: Prepared, engine: Engine) -> PipelineRunner | None:
    if prepared.pipeline is None:
        return None
    reference = prepared.dataset.reference_field
    return PipelineRunner(prepared.pipeline, engine, [reference] if reference else [])


async def pilot(prepared: Prepared, session: Session, run_id: str) -> PilotMeasure:
    """The pipeline with the starting prompt on the first val rows, for the estimate: their
    results are the run's own (the baseline reuses them), so nothing is paid twice."""
    rows = prepared.split.val[:PILOT_ROWS]
    spent = session.store.spent(run_id)
    engine = Engine(
        prepared.config.engine, prices=session.prices, cache=session.cache, spent_before=spent
    )
    async with engine:
        ctx = _context(prepared, session, run_id, engine, Spend())
        try:
            evaluation = await ctx.evaluate(prepared.prompt, rows)
        except BudgetExceeded:  # the run itself stops on it, with its status
            return measure_pilot([])
        finally:
            session.store.save_spent(run_id, engine.ledger.snapshot())
    return measure_pilot(evaluation.results.values())


def scoring_text(config: OptimizeConfig, dataset: Dataset) -> str:
    """What the reasoner is told about "good": the rubric itself, or the metrics' rules."""
    if config.scoring.judge is not None:
        return "A judge scores each response with this rubric:\n" + config.scoring.judge.rubric
    lines = []
    for name in config.scoring.metrics:
        if name.split(":")[0] == "label":
            labels = sorted({s.reference for s in dataset.samples if s.reference})
            lines.append(
                "label: the first of these labels found in the response must equal "
                f"the expected answer: {', '.join(labels)}"
            )
        else:
            lines.append(
                f"{name}: a reference metric comparing the response with the expected answer"
            )
    return "\n".join(lines)


async def _initial_state(
    prepared: Prepared,
    ctx: OptimizeContext,
    records: list[IterationRecord],
    reporter: Reporter,
) -> LoopState:
    baseline = prepared.prompt
    if not records:
        reporter.phase("Evaluating the baseline prompt on train and val")
        record = await _baseline_record(baseline, ctx)
        ctx.store.save_iteration(ctx.run_id, 0, record.model_dump())
        reporter.iteration(record)
        records = [record]
    state = LoopState(
        baseline=baseline,
        best=baseline,
        best_val=await ctx.evaluate(baseline, ctx.split.val),
        records=[],
    )
    for record in records:
        await apply(state, record, ctx)
    return state


async def _baseline_record(baseline: PromptTemplate, ctx: OptimizeContext) -> IterationRecord:
    on_batch = await ctx.evaluate(baseline, train_batch(ctx, 0))
    on_val = await ctx.evaluate(baseline, ctx.split.val)
    selection = plan(ctx.config.acceptance, len(ctx.split.val), on_val.aggregate.std)
    return IterationRecord(
        idx=0,
        strategy="baseline",
        status="baseline",
        reason=detectable_text(selection),
        prompt_hash=baseline.hash,
        prompt=baseline.text,
        train_parent=on_batch.mean,
        val_candidate=on_val.mean,
        spend=current_spend(ctx),
    )


async def apply(state: LoopState, record: IterationRecord, ctx: OptimizeContext) -> None:
    """Fold one checkpoint into the state (used live and when replaying on resume)."""
    state.records.append(record)
    if record.status == "accepted":
        state.best = PromptTemplate.from_text(record.prompt)
        state.best_val = await ctx.evaluate(state.best, ctx.split.val)
        state.since_improvement = 0
    elif record.status == "rejected":
        state.since_improvement += 1


async def run_loop(
    state: LoopState, ctx: OptimizeContext, strategy: Strategy, reporter: Reporter
) -> None:
    while (reason := stop_reason(state, ctx)) is None:
        reporter.phase(f"Iteration {len(state.records)}: {strategy.name} step")
        try:
            record = await strategy.step(state, ctx)
        except BudgetExceeded as exc:
            state.stopped_reason = f"budget: {exc.message}"
            return
        record = record.model_copy(update={"spend": current_spend(ctx)})
        ctx.store.save_iteration(ctx.run_id, record.idx, record.model_dump())
        await apply(state, record, ctx)
        reporter.iteration(record)
    state.stopped_reason = reason


def stop_reason(state: LoopState, ctx: OptimizeContext) -> str | None:
    rules = ctx.config.stop
    best = state.best_val.mean
    if (reason := budget_reason(state, ctx)) is not None:
        return reason
    if rules.target is not None and best is not None and best >= rules.target:
        return f"target {rules.target:g} reached on val ({best:.3f})"
    if state.iterations_done >= rules.max_iterations:
        return f"max iterations ({rules.max_iterations}) done"
    if state.since_improvement >= rules.patience:
        return f"no val improvement in {rules.patience} iterations (patience)"
    return None


def budget_reason(state: LoopState, ctx: OptimizeContext) -> str | None:
    """Stop while the budget still covers one more iteration and the final test."""
    budget, ledger = ctx.engine.config.budget, ctx.engine.ledger
    calls_per_item = _calls_per_item(ctx)
    batch = min(ctx.config.batch_size, len(ctx.split.train))
    test_calls = 2 * len(ctx.split.test) * calls_per_item
    step_calls = (2 * batch + len(ctx.split.val)) * calls_per_item + 3
    if budget.max_calls is not None and ledger.calls + step_calls + test_calls > budget.max_calls:
        return (
            f"budget: {budget.max_calls} calls would not cover another iteration "
            f"and the final test ({test_calls} calls)"
        )
    per_item = _cost_per_item(state.best_val)
    if budget.max_cost_usd is not None and per_item is not None:
        needed = (step_calls + test_calls) / calls_per_item * per_item
        if ledger.spent_usd + needed > budget.max_cost_usd:
            return f"budget: ${budget.max_cost_usd:g} would not cover another iteration and test"
    return None


def _calls_per_item(ctx: OptimizeContext) -> int:
    return ctx.calls_per_item


def _cost_per_item(evaluation: Evaluation) -> float | None:
    """Mean task + judge cost of one evaluated sample, from real usage so far."""
    costs = []
    for result in evaluation.results.values():
        if result.completion is None or result.completion.cost_usd is None:
            continue
        judge_score = result.scores.get(JUDGE_SCORE)
        judge = float(judge_score.details.get("cost_usd") or 0.0) if judge_score else 0.0
        costs.append(result.completion.cost_usd + judge)
    return sum(costs) / len(costs) if costs else None


def current_spend(ctx: OptimizeContext) -> Spend:
    before = ctx.spend_before
    totals = ctx.engine.accounting.snapshot()
    reasoning = [t for (purpose, _), t in totals.items() if purpose == "reasoning"]
    return Spend(
        calls=before.calls + sum(t.calls + t.failed_calls for t in totals.values()),
        cached_calls=before.cached_calls + sum(t.cached_calls for t in totals.values()),
        cost_usd=before.cost_usd + sum(t.cost_usd for t in totals.values()),
        cost_known=before.cost_known and all(t.cost_known for t in totals.values()),
        reasoning_input_tokens=before.reasoning_input_tokens
        + sum(t.input_tokens for t in reasoning),
        reasoning_output_tokens=before.reasoning_output_tokens
        + sum(t.output_tokens for t in reasoning),
    )


async def finish(
    state: LoopState, ctx: OptimizeContext, prepared: Prepared, reporter: Reporter
) -> OptimizeResult:
    """Score the baseline and the best prompt on test: the only time test is touched."""
    reporter.phase("Scoring the baseline and the best prompt on the held-out test split")
    status = "complete"
    try:
        base_test = await ctx.evaluate(state.baseline, ctx.split.test)
        best_test = await ctx.evaluate(state.best, ctx.split.test)
    except BudgetExceeded as exc:
        raise BudgetExceeded(
            f"{exc.message}; the test split was not scored (run {ctx.run_id})"
        ) from None
    baseline_val = await ctx.evaluate(state.baseline, ctx.split.val)
    return _result(state, ctx, prepared, status, (baseline_val, base_test), best_test)


def _values(evaluation: Evaluation, ids: Sequence[str]) -> list[float | None]:
    return [evaluation.value(i) for i in ids]


def _result(
    state: LoopState,
    ctx: OptimizeContext,
    prepared: Prepared,
    status: str,
    baseline: tuple[Evaluation, Evaluation],
    best_test: Evaluation,
) -> OptimizeResult:
    base_val, base_test = baseline
    ids = [s.id for s in ctx.split.test]
    gain = paired_compare(_values(base_test, ids), _values(best_test, ids), seed=ctx.config.seed)
    b, f = base_test.mean, best_test.mean
    val_best, val_base = state.best_val.mean, base_val.mean
    result = OptimizeResult(
        run_id=ctx.run_id,
        status=status,
        stopped_reason=state.stopped_reason,
        data=ctx.config.data,
        dataset_sha256=prepared.dataset.content_hash,
        split=SplitInfo(
            train=len(ctx.split.train),
            val=len(ctx.split.val),
            test=len(ctx.split.test),
            seed=ctx.config.split.seed,
            stratified=ctx.split.stratified,
        ),
        model=ctx.config.model.spec,
        reasoning_model=ctx.config.reasoner.spec,
        strategy=ctx.config.strategy,
        metric=prepared.primary_metric,
        baseline=TestScores(
            prompt_hash=state.baseline.hash, val=base_val.aggregate, test=base_test.aggregate
        ),
        final=TestScores(
            prompt_hash=state.best.hash, val=state.best_val.aggregate, test=best_test.aggregate
        ),
        gain=gain,
        relative_gain=(f - b) / b if b and f is not None else None,
        val_test_gap=val_best - f if val_best is not None and f is not None else None,
        val_gain=val_best - val_base if val_best is not None and val_base is not None else None,
        selection=plan(ctx.config.acceptance, len(ctx.split.val), base_val.aggregate.std),
        iterations=state.iterations_done,
        accepted=sum(1 for r in state.records if r.status == "accepted"),
        spend=current_spend(ctx),
        best_prompt=state.best.text,
        trajectory=state.records,
    )
    return result.model_copy(update={"headline": result_headline(result)})
