"""A rich progress display per variant: done/total, errors, running cost."""

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
from assay.store.runstore import ResultRecord


class RunProgress:
    def __init__(self, plan: RunPlan, done: set[tuple[str, str, int]], quiet: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),  # a label is not markup
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[errors]} err  ${task.fields[cost]:.4f}"),
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
                visible(v.key), total=per_variant, completed=already, errors=0, cost=0.0
            )
            self._cost[v.key] = 0.0

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
        self._progress.update(task, advance=1, errors=errors, cost=self._cost[result.variant])
