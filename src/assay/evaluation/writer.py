"""Group commits of results: one transaction per turn of the event loop, not per result.

Every result that completes in one turn of the loop is written in a single transaction when
that turn ends, with the run's spend as of then. The worker that made a result waits for its
commit before it takes its next item, so a result is on disk before its worker sends another
call: a ``kill -9`` loses at most the calls in flight (``--concurrency``), as one transaction
per result did. Under load many replies land in one turn and share a commit; when calls are
few, each result commits alone, at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from assay.records import Spent
from assay.store.runstore import ResultRecord, RunStore


class ResultWriter:
    def __init__(self, store: RunStore, spent: Callable[[], Spent]) -> None:
        """``spent``: the run's spend now (the budget ledger's snapshot), saved with each
        commit so a resume charges what this session used."""
        self._store = store
        self._spent = spent
        self._pending: list[tuple[ResultRecord, asyncio.Future[None]]] = []
        self.commits = 0
        self.saved = 0

    async def save(self, result: ResultRecord) -> None:
        """Return once ``result`` is committed; raise what the store raised if it was not."""
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._commit)  # after the results this turn of the loop completes
        self._pending.append((result, committed))
        await committed

    def _commit(self) -> None:
        batch, self._pending = self._pending, []
        try:
            self._store.save_results([result for result, _ in batch], self._spent())
        except Exception as exc:  # a full disk: every worker waiting on this commit sees it
            _settle(batch, exc)
            return
        self.commits += 1
        self.saved += len(batch)
        _settle(batch, None)


def _settle(
    batch: list[tuple[ResultRecord, asyncio.Future[None]]], error: Exception | None
) -> None:
    for _, committed in batch:
        if committed.done():  # its worker was cancelled (Ctrl-C); the result is saved anyway
            continue
        if error is None:
            committed.set_result(None)
        else:
            committed.set_exception(error)
