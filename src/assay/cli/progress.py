"""A rich progress display per variant: done/total, errors, running cost; and a row for the
run's batch jobs (submitted, in progress, done) when it has any."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from assay.benchmark.plan import RunPlan
from assay.cli.untrusted import visible
from assay.evaluation.batch_progress import BatchCounts
from assay.store.runstore import ResultRecord


class RunProgress:
    def __init__(self, plan: RunPlan, done: set[tuple[str, str, int]], quiet: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),  # a label is not markup
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=quiet,
        )
        per_variant = plan.n_samples * plan.config.repeats
        self._tasks: dict[str, TaskID] = {}
        self._cost: dict[str, float] = {}
        for v in plan.variants:
            already = sum(1 for key in done if key[0] == v.key)
            self._tasks[v.key] = self._progress.add_task(
                visible(v.key), total=per_variant, completed=already, errors=0, note=_note(0, 0.0)
            )
            self._cost[v.key] = 0.0
        self._batches: TaskID | None = None

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def on_result(self, result: ResultRecord) -> None:
        task = self._tasks[result.variant]
        if result.completion and result.completion.cost_usd and not result.completion.cached:
            self._cost[result.variant] += result.completion.cost_usd
        errors = self._progress.tasks[task].fields["errors"] + (1 if result.error_kind else 0)
        cost = self._cost[result.variant]
        self._progress.update(task, advance=1, errors=errors, note=_note(errors, cost))

    def on_batches(self, counts: BatchCounts) -> None:
        """One row for the batch jobs: their requests done of those sent, and the jobs by state."""
        if self._batches is None:
            self._batches = self._progress.add_task("batches", errors=0, note="")
        self._progress.update(
            self._batches,
            total=counts.items_submitted,
            completed=counts.items_done,
            note=counts.line(),
        )


def _note(errors: int, cost: float) -> str:
    return f"{errors} err  ${cost:.4f}"
