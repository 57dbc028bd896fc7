"""Counts of a run's batch jobs for the progress display: submitted, in progress, done."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from assay.evaluation.execute import ProgressSink
from assay.providers.batch import BatchStatus


@dataclass(frozen=True)
class BatchCounts:
    """Batch jobs of this session (sent now or found again on resume) and their requests."""

    submitted: int = 0
    in_progress: int = 0
    done: int = 0
    items_submitted: int = 0
    items_in_progress: int = 0
    items_done: int = 0

    def line(self) -> str:
        """The jobs by state (their requests are ``items_done`` of ``items_submitted``)."""
        return f"{self.submitted} submitted · {self.in_progress} in progress · {self.done} done"


@runtime_checkable
class BatchProgressSink(Protocol):
    """A progress sink that also shows batch jobs (the others see only results)."""

    def on_batches(self, counts: BatchCounts) -> None: ...


@dataclass
class BatchTally:
    progress: ProgressSink
    _items: dict[str, int] = field(default_factory=dict)  # batch id -> its requests
    _status: dict[str, str] = field(default_factory=dict)  # batch id -> the provider's word
    _done: set[str] = field(default_factory=set)

    def submitted(self, batch_id: str, n_items: int) -> None:
        self._items[batch_id] = n_items
        self._emit()

    def changed(self, batch_id: str, status: BatchStatus) -> bool:
        """Note the batch's status; True when it differs from the last one seen."""
        if self._status.get(batch_id) == status.status:
            return False
        self._status[batch_id] = status.status
        return True

    def done(self, batch_id: str) -> None:
        self._done.add(batch_id)
        self._emit()

    def counts(self) -> BatchCounts:
        done_items = sum(self._items[b] for b in self._done)
        total_items = sum(self._items.values())
        return BatchCounts(
            submitted=len(self._items),
            in_progress=len(self._items) - len(self._done),
            done=len(self._done),
            items_submitted=total_items,
            items_in_progress=total_items - done_items,
            items_done=done_items,
        )

    def _emit(self) -> None:
        if isinstance(self.progress, BatchProgressSink):
            self.progress.on_batches(self.counts())
