"""Execute a plan: each work item is called, scored and saved as one record, as it completes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from assay.engine.engine import Engine
from assay.errors import AssayError, AuthError, BudgetExceeded, DataError, ProviderError
from assay.evaluation.items import WorkItem
from assay.pipeline.executor import PipelineRunner
from assay.records import repair_surrogates
from assay.scoring.score import Score
from assay.scoring.scorer import ResponseScorer
from assay.store.runstore import ResultRecord, RunStore


class ProgressSink(Protocol):
    def on_result(self, result: ResultRecord) -> None: ...


class NoProgress:
    def on_result(self, result: ResultRecord) -> None:
        pass


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
    workers = [_worker(pending, ctx, outcome) for _ in range(n_workers)]
    await asyncio.gather(*workers)
    return outcome


async def _worker(items: Iterator[WorkItem], ctx: RunContext, outcome: ExecutionOutcome) -> None:
    try:
        await _work(items, ctx, outcome)
    except DataError as exc:  # the data file changed while its rows were being read
        outcome.stopped_reason, outcome.fatal = str(exc), exc


async def _work(items: Iterator[WorkItem], ctx: RunContext, outcome: ExecutionOutcome) -> None:
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
        ctx.store.save_result(result, ctx.engine.ledger.snapshot())
        outcome.completed += 1
        ctx.progress.on_result(result)


async def run_item(item: WorkItem, ctx: RunContext) -> ResultRecord:
    base = ResultRecord(
        run_id=ctx.run_id,
        variant=item.variant.key,
        sample_id=item.sample.id,
        repeat=item.repeat,
        request=item.request,
    )
    if ctx.pipeline is not None:
        return await _run_pipeline_item(item, ctx, ctx.pipeline, base)
    try:
        completion = await ctx.engine.complete(item.variant.model, item.request, purpose="task")
    except (AuthError, BudgetExceeded):
        raise
    except ProviderError as exc:
        # An error body is the server's text: it may hold half an emoji, which no store encodes.
        reason = repair_surrogates(str(exc))
        failed = {name: Score.error(reason) for name in ctx.scorer.names}
        return base.model_copy(update={"error_kind": exc.kind, "error": reason, "scores": failed})
    scores = await ctx.scorer.score(item.sample, completion.text)
    return base.model_copy(update={"completion": completion, "scores": scores})


async def _run_pipeline_item(
    item: WorkItem, ctx: RunContext, pipeline: PipelineRunner, base: ResultRecord
) -> ResultRecord:
    """The user's pipeline on the item: its output is scored, the judge also sees its trace; an
    exception in it is this item's error (a spent budget or a refused key stops the run)."""
    outcome = await pipeline.run(item)
    completion = outcome.completion
    if outcome.error is not None or completion is None:
        error = outcome.error or "the pipeline gave no output"
        failed = {name: Score.error(error) for name in ctx.scorer.names}
        update = {"error_kind": outcome.error_kind, "error": error, "scores": failed}
        return base.model_copy(update={**update, "completion": completion})
    scores = await ctx.scorer.score(item.sample, completion.text, trace=completion.pipeline)
    return base.model_copy(update={"completion": completion, "scores": scores})
