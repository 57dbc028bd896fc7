"""Execute a plan: each work item is called, scored and saved as one record, as it completes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from assay.engine.engine import Engine
from assay.engine.limiter import LimitNow
from assay.errors import AssayError, AuthError, BudgetExceeded, DataError, ProviderError
from assay.evaluation.items import WorkItem
from assay.evaluation.writer import ResultWriter
from assay.pipeline.executor import PipelineRunner
from assay.records import Completion, repair_surrogates
from assay.scoring.score import Score
from assay.scoring.scorer import ResponseScorer
from assay.store.runstore import ResultRecord, RunStore


class ProgressSink(Protocol):
    def on_result(self, result: ResultRecord) -> None: ...


class NoProgress:
    def on_result(self, result: ResultRecord) -> None:
        pass


@runtime_checkable
class LimitProgressSink(Protocol):
    """A progress sink that also shows the adaptive concurrency limit: handed the engine's
    reading once, it reads it when it redraws (the limit moves on every reply)."""

    def watch_limit(self, limit_now: Callable[[], LimitNow | None]) -> None: ...


def show_limit(progress: ProgressSink, engine: Engine) -> None:
    """Under ``--concurrency auto``, let a progress display that can show the limit read it."""
    if engine.config.auto and isinstance(progress, LimitProgressSink):
        progress.watch_limit(engine.limit_now)


@dataclass
class RunContext:
    run_id: str
    store: RunStore
    engine: Engine
    scorer: ResponseScorer
    progress: ProgressSink = field(default_factory=NoProgress)
    pipeline: PipelineRunner | None = None  # --pipeline: each item runs the user's code


@dataclass
class ExecutionOutcome:
    completed: int = 0
    stopped_reason: str | None = None
    fatal: AssayError | None = None  # ends the run as failed: a 401, or the data file changed


async def execute(
    items: Iterator[WorkItem], ctx: RunContext, done: set[tuple[str, str, int]]
) -> ExecutionOutcome:
    """Run every item not in ``done``; stop cleanly on a budget or an auth failure."""
    outcome = ExecutionOutcome()
    pending = (i for i in items if (i.variant.key, i.sample.id, i.repeat) not in done)
    # One worker per call that may be in flight: under --concurrency auto, as many as its
    # ceiling, and the engine's adaptive limit decides how many of them are sending.
    n_workers = max(1, ctx.engine.config.max_in_flight)
    writer = ResultWriter(ctx.store, ctx.engine.ledger.snapshot)
    workers = [_worker(pending, ctx, writer, outcome) for _ in range(n_workers)]
    with fewer_gc_passes():
        await asyncio.gather(*workers)
    return outcome


# The collector's first generation is walked every 700 net allocations by default; at 64 calls
# in flight each pass walks every live object of every call, ~10% of a run's CPU. Every
# 20,000 it costs under 1% and holds a few MB more of garbage (docs/benchmarks.md).
RUN_GC_THRESHOLDS = (20_000, 10, 10)


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Collect garbage less often while calls run; restored after (unless changed since)."""
    before = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    try:
        yield
    finally:
        if gc.get_threshold() == RUN_GC_THRESHOLDS:
            gc.set_threshold(*before)


async def _worker(
    items: Iterator[WorkItem], ctx: RunContext, writer: ResultWriter, outcome: ExecutionOutcome
) -> None:
    try:
        await _work(items, ctx, writer, outcome)
    except DataError as exc:  # the data file changed while its rows were being read
        outcome.stopped_reason, outcome.fatal = str(exc), exc


async def _work(
    items: Iterator[WorkItem], ctx: RunContext, writer: ResultWriter, outcome: ExecutionOutcome
) -> None:
    """Each result is committed before its worker takes the next item (``ResultWriter``)."""
    for item in items:
        if outcome.stopped_reason:
            return
        try:
            result = await run_item(item, ctx)
        except BudgetExceeded as exc:
            outcome.stopped_reason = str(exc)
            return
        except AuthError as exc:
            outcome.stopped_reason, outcome.fatal = repair_surrogates(str(exc)), exc
            return
        await writer.save(result)
        outcome.completed += 1
        ctx.progress.on_result(result)


async def run_item(item: WorkItem, ctx: RunContext) -> ResultRecord:
    if ctx.pipeline is not None:
        return await _run_pipeline_item(item, ctx, ctx.pipeline)
    try:
        completion = await ctx.engine.complete(item.variant.model, item.request, purpose="task")
    except (AuthError, BudgetExceeded):
        raise
    except ProviderError as exc:
        # An error body is the server's text: it may hold half an emoji, which no store encodes.
        reason = repair_surrogates(str(exc))
        failed = {name: Score.error(reason) for name in ctx.scorer.names}
        return item_result(item, ctx, None, failed, exc.kind, reason)
    scores = await ctx.scorer.score(item.sample, completion.text)
    return item_result(item, ctx, completion, scores)


async def _run_pipeline_item(
    item: WorkItem, ctx: RunContext, pipeline: PipelineRunner
) -> ResultRecord:
    """The user's pipeline on the item: its output is scored, the judge also sees its trace; an
    exception in it is this item's error (a spent budget or a refused key stops the run)."""
    outcome = await pipeline.run(item)
    completion = outcome.completion
    if outcome.error is not None or completion is None:
        error = outcome.error or "the pipeline gave no output"
        failed = {name: Score.error(error) for name in ctx.scorer.names}
        return item_result(item, ctx, completion, failed, outcome.error_kind, error)
    scores = await ctx.scorer.score(item.sample, completion.text, trace=completion.pipeline)
    return item_result(item, ctx, completion, scores)


def item_result(
    item: WorkItem,
    ctx: RunContext,
    completion: Completion | None,
    scores: dict[str, Score],
    error_kind: str | None = None,
    error: str | None = None,
) -> ResultRecord:
    """The item's result, built once (no copy per field added)."""
    return ResultRecord(
        run_id=ctx.run_id,
        variant=item.variant.key,
        sample_id=item.sample.id,
        repeat=item.repeat,
        request=item.request,
        completion=completion,
        error_kind=error_kind,
        error=error,
        scores=scores,
    )
