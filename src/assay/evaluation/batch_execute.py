"""Execute a plan whose models run in batch mode: their items go through provider batch jobs,
the others are called live at the same time.

Each batch job is recorded in the run store as soon as the provider accepts it, so a resume
finds it again (``retrieve``, never a second ``create``) and collects what it answered. Its
answers are scored and saved as ordinary results; what it did not answer (error lines,
expired or cancelled requests) is called live, through the engine, like any other item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

from assay.engine.batch import BatchSettings, ModelBatches
from assay.errors import AuthError, BudgetExceeded, ProviderError
from assay.evaluation.batch_progress import BatchTally
from assay.evaluation.execute import ExecutionOutcome, RunContext, execute, item_result
from assay.evaluation.items import WorkItem
from assay.providers.batch import BatchEntry, BatchStatus
from assay.records import Completion, ModelConfig, canonical_json, repair_surrogates, sha256_text
from assay.store.runstore import BATCH_COLLECTED, BatchRecord

Reserved = dict[str, tuple[WorkItem, float]]  # custom_id -> (item, budget reserved for it)


def custom_id(item: WorkItem) -> str:
    """The item's id inside a batch: the same in every session (a resume matches by it), and
    within what Anthropic accepts (64 of ``[A-Za-z0-9_-]``)."""
    key = canonical_json([item.variant.key, item.sample.id, item.repeat])
    return "assay-" + sha256_text(key)[:48]


async def execute_with_batches(
    items: Iterator[WorkItem],
    ctx: RunContext,
    done: set[tuple[str, str, int]],
    settings: BatchSettings,
) -> ExecutionOutcome:
    """Run every item not in ``done``: batch models' items in batch jobs, the others live."""
    live: list[WorkItem] = []
    batched: dict[str, list[WorkItem]] = {}
    for item in items:
        if (item.variant.key, item.sample.id, item.repeat) in done:
            continue
        model = item.variant.model
        (batched.setdefault(model.label, []) if model.batch else live).append(item)
    outcome, tally = ExecutionOutcome(), BatchTally(ctx.progress)
    runs = [
        _ModelRun(ctx, settings, group[0].variant.model, group, outcome, tally).run()
        for group in batched.values()
    ]
    live_run = asyncio.ensure_future(execute(iter(live), ctx, set()))
    await asyncio.gather(live_run, *runs)
    return _merged(outcome, live_run.result())


def _merged(a: ExecutionOutcome, b: ExecutionOutcome) -> ExecutionOutcome:
    return ExecutionOutcome(
        completed=a.completed + b.completed,
        stopped_reason=a.stopped_reason or b.stopped_reason,
        fatal=a.fatal or b.fatal,
    )


@dataclass
class _ModelRun:
    """One model's items: found again in open batches, answered from the cache, or sent."""

    ctx: RunContext
    settings: BatchSettings
    model: ModelConfig
    items: list[WorkItem]
    outcome: ExecutionOutcome
    tally: BatchTally

    def __post_init__(self) -> None:
        self.calls = ModelBatches(self.ctx.engine, self.model, self.settings)
        self.pending = {custom_id(i): i for i in self.items}
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        try:
            self._reattach()
            await self._send_the_rest()
            await asyncio.gather(*self.tasks)
        except ProviderError as exc:  # a batch API refused the job, even after retries
            self._stop(exc, fatal=not exc.retryable)
        finally:
            for task in self.tasks:
                task.cancel()
            await self.calls.aclose()

    def _reattach(self) -> None:
        """Follow the batches an earlier session sent for this model, for its pending items."""
        store, run_id = self.ctx.store, self.ctx.run_id
        for record in store.batches(run_id):
            if record.collected or record.model != self.model.label:
                continue
            mine = {c: self.pending.pop(c) for c in record.custom_ids if c in self.pending}
            if not mine:
                store.set_batch_status(run_id, record.batch_id, BATCH_COLLECTED)
                continue
            self._follow(record, {c: (i, self.calls.hold(i.request)) for c, i in mine.items()})

    async def _send_the_rest(self) -> None:
        chunk: Reserved = {}
        for cid, item in self.pending.items():
            if self.outcome.stopped_reason:
                break
            hit = self.calls.cached(item.request)
            if hit is not None:
                await self._save(item, hit)
                continue
            estimate = await self._reserve(item, chunk)
            if estimate is None:
                break
            chunk[cid] = (item, estimate)
            if len(chunk) >= self.settings.max_requests:
                await self._submit(chunk)
        if chunk:
            await self._submit(chunk)

    async def _reserve(self, item: WorkItem, chunk: Reserved) -> float | None:
        """The item's reservation; None when the budget can never cover it (run stopped).
        The chunk is sent before waiting: its reservations settle only once it is answered."""
        try:
            return self.calls.try_reserve(item.request)
        except BudgetExceeded:
            if chunk:
                await self._submit(chunk)
        try:
            return await self.calls.reserve(item.request)
        except BudgetExceeded as exc:
            self._stop(exc)
            return None

    async def _submit(self, chunk: Reserved) -> None:
        """Send the chunk as one batch job and record it; the chunk is emptied."""
        reserved = dict(chunk)
        chunk.clear()
        entries = [BatchEntry(cid, item.request) for cid, (item, _) in reserved.items()]
        try:
            submitted = await self.calls.submit(entries)
        except BaseException:
            for _, estimate in reserved.values():
                self.calls.release(estimate)
            raise
        now = time.time()
        record = BatchRecord(
            run_id=self.ctx.run_id,
            batch_id=submitted.batch_id,
            provider=self.model.provider,
            model=self.model.label,
            input_file_id=submitted.input_file_id,
            custom_ids=tuple(reserved),
            status="submitted",
            created_at=now,
            updated_at=now,
        )
        self.ctx.store.save_batch(record, self.ctx.engine.ledger.snapshot())
        self._follow(record, reserved)

    def _follow(self, record: BatchRecord, reserved: Reserved) -> None:
        self.tally.submitted(record.batch_id, len(reserved))
        self.tasks.append(asyncio.create_task(self._collect(record, reserved)))

    async def _collect(self, record: BatchRecord, reserved: Reserved) -> None:
        """Wait for the batch, save its answers, call live what it did not answer."""
        try:
            status = await self.calls.wait(record.batch_id, self._on_status(record))
            requests = {cid: (item.request, est) for cid, (item, est) in reserved.items()}
            answers = await self.calls.collect(status, requests, time.time() - record.created_at)
        except ProviderError as exc:  # the batch stays open in the store: a resume finds it
            self._stop(exc, fatal=not exc.retryable)
            return
        for cid, (item, _) in reserved.items():
            if cid in answers and not await self._save(item, answers[cid]):
                return  # stopped: the batch stays open, a resume saves the rest
        await self._call_live([item for cid, (item, _) in reserved.items() if cid not in answers])
        if not self.outcome.stopped_reason:
            self.ctx.store.set_batch_status(self.ctx.run_id, record.batch_id, BATCH_COLLECTED)
            self.tally.done(record.batch_id)

    def _on_status(self, record: BatchRecord) -> _StatusWriter:
        return _StatusWriter(self.ctx, record.batch_id, self.tally)

    async def _call_live(self, items: list[WorkItem]) -> None:
        """Items the batch did not answer, as ordinary calls (retries and budget included)."""
        if not items:
            return
        retried = await execute(iter(items), self.ctx, set())
        self.outcome.completed += retried.completed
        if retried.stopped_reason and not self.outcome.stopped_reason:
            self.outcome.stopped_reason, self.outcome.fatal = retried.stopped_reason, retried.fatal

    async def _save(self, item: WorkItem, completion: Completion) -> bool:
        """Score and save one answer, as a live call's result is; False once stopped."""
        try:
            scores = await self.ctx.scorer.score(item.sample, completion.text)
        except BudgetExceeded as exc:
            self._stop(exc)
            return False
        except AuthError as exc:
            self._stop(exc, fatal=True)
            return False
        result = item_result(item, self.ctx, completion, scores)
        self.ctx.store.save_result(result, self.ctx.engine.ledger.snapshot())
        self.outcome.completed += 1
        self.ctx.progress.on_result(result)
        return True

    def _stop(self, exc: Exception, *, fatal: bool = False) -> None:
        if self.outcome.stopped_reason:
            return
        self.outcome.stopped_reason = repair_surrogates(str(exc))
        if fatal and isinstance(exc, ProviderError):
            self.outcome.fatal = exc


@dataclass(frozen=True)
class _StatusWriter:
    """Records each new status of a batch in the store and in the progress counts."""

    ctx: RunContext
    batch_id: str
    tally: BatchTally

    def __call__(self, status: BatchStatus) -> None:
        if self.tally.changed(self.batch_id, status):
            self.ctx.store.set_batch_status(self.ctx.run_id, self.batch_id, status.status)
