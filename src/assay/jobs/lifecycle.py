"""What every job shares: what a resume may change, who may execute a run, and how a run ends
when it is cut short.

A resume may raise the budget or change concurrency; nothing that changes results. Ctrl-C
or SIGTERM marks the run ``interrupted`` and raises ``JobInterrupted``; any other unexpected
error marks it ``failed``. Both leave the run resumable. These rules hold for the CLI and the
Python API alike, because both call the jobs.

One process executes a run at a time: executing takes the run's lease (a row in the store
naming the holder's pid and host), a thread refreshes its heartbeat every
``LEASE_HEARTBEAT_S`` seconds, and any ending releases it. Another job on the run is refused
with the holder's name while the lease is live. A lease is stale, and taken over, when its
heartbeat is older than ``LEASE_STALE_S`` seconds (``$ASSAY_LEASE_STALE_S`` overrides it, for
tests) or when its holder was on this host and its pid is gone (a kill -9).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from assay.engine.engine import EngineConfig
from assay.errors import AssayError, BudgetExceeded
from assay.store.runstore import Lease, RunStore

T = TypeVar("T")

LEASE_HEARTBEAT_S = 5.0
LEASE_STALE_S = 30.0
LEASE_STALE_ENV = "ASSAY_LEASE_STALE_S"
HOST = socket.gethostname()


class JobInterrupted(AssayError):
    """Ctrl-C or SIGTERM during a job: the run is marked ``interrupted``; completed work is
    kept."""

    def __init__(self, run_id: str, command: str, what: str = "Interrupted") -> None:
        super().__init__(
            f"{what}; completed work is saved in run {run_id}",
            f"continue with: assay {command} --resume {run_id}",
        )
        self.run_id = run_id


class RunLeased(AssayError):
    """Another job, in this process or another, is executing the run."""

    def __init__(self, holder: Lease, command: str) -> None:
        seen = max(0.0, time.time() - holder.heartbeat)
        super().__init__(
            f"Run {holder.run_id} is being run by pid {holder.pid} on host {holder.host} "
            f"(seen {seen:.0f} s ago)",
            f"wait for it to end or stop it, then: assay {command} --resume {holder.run_id}; "
            f"a holder unseen for {stale_after_s():g} s is taken over",
        )
        self.holder = holder


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
    """What a resume may change. ``None`` keeps the value the run was started with."""

    model_config = ConfigDict(frozen=True)

    max_cost_usd: float | None = Field(default=None, ge=0)
    max_calls: int | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1)

    def apply(self, stored: EngineConfig) -> EngineConfig:
        budget = stored.budget.model_copy(
            update={
                k: v
                for k, v in (("max_cost_usd", self.max_cost_usd), ("max_calls", self.max_calls))
                if v is not None
            }
        )
        concurrency = self.concurrency or stored.concurrency
        return stored.model_copy(update={"budget": budget, "concurrency": concurrency})


def run_to_end(work: Coroutine[Any, Any, T], store: RunStore, run_id: str, command: str) -> T:
    """Run a job's coroutine holding the run's lease; a run cut short is never left
    ``running``."""
    try:
        lease = take_lease(store, run_id, command)
    except BaseException:
        work.close()  # never started: no "coroutine was never awaited" warning
        raise
    with _heartbeat(store, lease):
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


def stale_after_s() -> float:
    try:
        value = float(os.environ.get(LEASE_STALE_ENV, LEASE_STALE_S))
    except ValueError:
        return LEASE_STALE_S
    return value if 0 < value < float("inf") else LEASE_STALE_S


def is_stale(lease: Lease) -> bool:
    if time.time() - lease.heartbeat > stale_after_s():
        return True
    return lease.host == HOST and not _pid_alive(lease.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def check_not_leased(store: RunStore, run_id: str, command: str) -> None:
    """Refuse early (before the pre-flight) a resume of a run that is being executed."""
    holder = store.lease(run_id)
    if holder is not None and not is_stale(holder):
        raise RunLeased(holder, command)


def take_lease(store: RunStore, run_id: str, command: str) -> Lease:
    """The run's lease for this job, or ``RunLeased`` naming its live holder."""
    mine = Lease(run_id, secrets.token_hex(8), os.getpid(), HOST, time.time())
    for _ in range(5):  # a holder may release or be taken over between two steps
        if store.insert_lease(mine):
            return mine
        holder = store.lease(run_id)
        if holder is None:
            continue
        if not is_stale(holder):
            raise RunLeased(holder, command)
        if store.take_over_lease(holder, mine):
            return mine
    holder = store.lease(run_id)
    raise RunLeased(holder or mine, command)


@contextmanager
def _heartbeat(store: RunStore, lease: Lease) -> Iterator[None]:
    """Refresh the lease from a thread while the job runs (a long analysis blocks the loop,
    not the thread); release it at the end, however the job ends."""
    every = min(LEASE_HEARTBEAT_S, stale_after_s() / 3)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            with suppress(sqlite3.Error):  # a busy or full store: try again on the next beat
                store.refresh_lease(lease.run_id, lease.token)

    thread = threading.Thread(target=beat, name=f"assay-lease-{lease.run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        with suppress(sqlite3.Error):  # left behind: stale once this process is gone
            store.release_lease(lease.run_id, lease.token)
