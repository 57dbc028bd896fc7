"""A rich progress display per variant: done/total, errors, running cost; a row for the
run's batch jobs (submitted, in progress, done) when it has any; and under ``--concurrency
auto`` a ``concurrency`` row for the adaptive limit (a bar and ``23/64 auto``) as it moves."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from assay.benchmark.plan import RunPlan
from assay.cli.untrusted import visible
from assay.engine.limiter import LimitNow
from assay.evaluation.batch_progress import BatchCounts
from assay.store.runstore import ResultRecord

# The display redraws 10 times a second: counts are pushed to it at most that often, not once
# per result (at hundreds of results a second that was a measurable share of a run's CPU).
PUSH_EVERY_S = 0.1


@dataclass
class _Tally:
    task: TaskID
    done: int
    errors: int = 0
    cost: float = 0.0


class RunProgress:
    def __init__(self, plan: RunPlan, done: set[tuple[str, str, int]], quiet: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),  # a label is not markup
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            _NotOnGauges(TimeElapsedColumn()),
            _NotOnGauges(TimeRemainingColumn()),
            console=Console(stderr=True),
            disable=quiet,
        )
        per_variant = plan.n_samples * plan.config.repeats
        self._tallies: dict[str, _Tally] = {}
        for v in plan.variants:
            already = sum(1 for key in done if key[0] == v.key)
            task = self._progress.add_task(
                visible(v.key), total=per_variant, completed=already, note=_note(0, 0.0)
            )
            self._tallies[v.key] = _Tally(task, already)
        self._batches: TaskID | None = None
        self._limit_now: Callable[[], LimitNow | None] | None = None
        self._limit: TaskID | None = None
        self._pushed_at = time.monotonic()

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._push()
        self._progress.stop()

    def on_result(self, result: ResultRecord) -> None:
        tally = self._tallies[result.variant]
        tally.done += 1
        tally.errors += 1 if result.error_kind else 0
        if result.completion and result.completion.cost_usd and not result.completion.cached:
            tally.cost += result.completion.cost_usd
        if time.monotonic() - self._pushed_at >= PUSH_EVERY_S:
            self._push()

    def _push(self) -> None:
        for t in self._tallies.values():
            self._progress.update(t.task, completed=t.done, note=_note(t.errors, t.cost))
        self._push_limit()
        self._pushed_at = time.monotonic()

    def watch_limit(self, limit_now: Callable[[], LimitNow | None]) -> None:
        """``--concurrency auto``: read the engine's limit at each redraw of the counts."""
        self._limit_now = limit_now

    def _push_limit(self) -> None:
        now = self._limit_now() if self._limit_now is not None else None
        if now is None:
            return
        if self._limit is None:  # a gauge: the limit against its ceiling, no times
            self._limit = self._progress.add_task("concurrency", note="auto", gauge=True)
        self._progress.update(self._limit, total=now.ceiling, completed=now.limit)

    def on_batches(self, counts: BatchCounts) -> None:
        """One row for the batch jobs: their requests done of those sent, and the jobs by state."""
        if self._batches is None:
            self._batches = self._progress.add_task("batches", note="")
        self._progress.update(
            self._batches,
            total=counts.items_submitted,
            completed=counts.items_done,
            note=counts.line(),
        )


def _note(errors: int, cost: float) -> str:
    return f"{errors} err  ${cost:.4f}"


class _NotOnGauges(ProgressColumn):
    """A time column, left empty on a gauge row (the concurrency limit is not work done)."""

    def __init__(self, inner: ProgressColumn) -> None:
        super().__init__()
        self._inner = inner

    def render(self, task: Task) -> RenderableType:
        return Text("") if task.fields.get("gauge") else self._inner.render(task)
