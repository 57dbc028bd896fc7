"""What every job shares: what a resume may change, and how a run ends when it is cut short.

A resume may raise the budget or change concurrency; nothing that changes results. Ctrl-C
or SIGTERM marks the run ``interrupted`` and raises ``JobInterrupted``; any other unexpected
error marks it ``failed``. Both leave the run resumable. These rules hold for the CLI and the
Python API alike, because both call the jobs.
Executing holds the run's lease (``assay.jobs.lease``).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from contextlib import suppress
from types import FrameType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assay.benchmark.config import RunConfig
from assay.engine.engine import EngineConfig
from assay.engine.limiter import concurrency_fields
from assay.errors import AssayError, BudgetExceeded
from assay.evaluation.session import Session
from assay.jobs.lease import check_not_leased, heartbeat, take_lease
from assay.optimizer.config import OptimizeConfig
from assay.store.runstore import RunRecord, RunStore

T = TypeVar("T")


class JobInterrupted(AssayError):
    """Ctrl-C or SIGTERM during a job: the run is marked ``interrupted``; completed work is
    kept."""

    def __init__(self, run_id: str, command: str, what: str = "Interrupted") -> None:
        super().__init__(
            f"{what}; completed work is saved in run {run_id}",
            f"continue with: assay {command} --resume {run_id}",
        )
        self.run_id = run_id


class StoreFull(AssayError):
    """The disk under the run store filled up during a run."""

    def __init__(self, run_id: str, command: str) -> None:
        super().__init__(
            f"The disk holding the run store is full; completed results are saved in run {run_id}",
            f"free some space, then: assay {command} --resume {run_id}",
        )
        self.run_id = run_id


class _Terminated(Exception):
    """SIGTERM arrived while a job ran."""


class ResumeChanges(BaseModel):
    """What a resume may change. ``None`` keeps the value the run was started with;
    ``concurrency`` is a number, ``"auto"`` or ``"auto:N"`` (as ``--concurrency`` takes it)."""

    model_config = ConfigDict(frozen=True)

    max_cost_usd: float | None = Field(default=None, ge=0)
    max_calls: int | None = Field(default=None, ge=0)
    concurrency: int | str | None = None

    @field_validator("concurrency")
    @classmethod
    def _a_concurrency(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            concurrency_fields(value)  # a ValueError names what is wrong
        return value

    def apply(self, stored: EngineConfig) -> EngineConfig:
        budget = stored.budget.model_copy(
            update={
                k: v
                for k, v in (("max_cost_usd", self.max_cost_usd), ("max_calls", self.max_calls))
                if v is not None
            }
        )
        given = concurrency_fields(self.concurrency) if self.concurrency is not None else {}
        return stored.model_copy(update={"budget": budget, **given})


JobConfig = TypeVar("JobConfig", RunConfig, OptimizeConfig)


def resumed_config(
    session: Session,
    run_id: str,
    command: str,
    stored_config: Callable[[RunRecord], JobConfig],
    changes: ResumeChanges,
) -> tuple[RunRecord, JobConfig]:
    """The stored run and its own config with ``changes`` applied; a run another process is
    executing is refused here, before anything is printed."""
    run = session.store.get_run(run_id)
    check_not_leased(session.store, run.id, command)
    stored = stored_config(run)
    return run, stored.model_copy(update={"engine": changes.apply(stored.engine)})


def run_to_end(work: Coroutine[Any, Any, T], store: RunStore, run_id: str, command: str) -> T:
    """Run a job's coroutine holding the run's lease; a run cut short is never left
    ``running``."""
    try:
        lease = take_lease(store, run_id, command)
    except BaseException:
        work.close()  # never started: no "coroutine was never awaited" warning
        raise
    with heartbeat(store, lease):
        try:
            return asyncio.run(_until_sigterm(work))
        except KeyboardInterrupt:
            _mark(store, run_id, "interrupted")
            raise JobInterrupted(run_id, command) from None
        except _Terminated:
            _mark(store, run_id, "interrupted")
            raise JobInterrupted(run_id, command, "Terminated (SIGTERM)") from None
        except BudgetExceeded:  # a budget that ran out is a stop, not a failure
            _mark(store, run_id, "stopped")
            raise
        except sqlite3.OperationalError as exc:
            _mark(store, run_id, "failed")
            if is_disk_full(exc):
                raise StoreFull(run_id, command) from None
            raise
        except BaseException:
            _mark(store, run_id, "failed")
            raise


def is_disk_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def _mark(store: RunStore, run_id: str, status: str) -> None:
    """Record how the run ended; a store that cannot be written (a full disk) must not hide
    the error that ended the run, and the run stays resumable either way."""
    with suppress(sqlite3.Error):
        store.set_status(run_id, status)


async def _until_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; SIGTERM cancels it as Ctrl-C would (only the main thread gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        return await work
    task, loop = asyncio.current_task(), asyncio.get_running_loop()
    terminated = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        terminated.set()
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return await work
    except asyncio.CancelledError:
        if terminated.is_set():
            raise _Terminated from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
