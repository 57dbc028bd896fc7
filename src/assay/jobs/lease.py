"""Who may execute a run: one process at a time.

Executing a run takes the run's lease (a row in the store
naming the holder's pid and host), a thread refreshes its heartbeat every
``LEASE_HEARTBEAT_S`` seconds, and any ending releases it. Another job on the run is refused
with the holder's name while the lease is live. A lease is stale, and taken over, when its
heartbeat is older than ``LEASE_STALE_S`` seconds (``$ASSAY_LEASE_STALE_S`` overrides it, for
tests) or when its holder was on this host and its pid is gone (a kill -9).
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from assay.errors import AssayError
from assay.store.runstore import Lease, RunStore

LEASE_HEARTBEAT_S = 5.0
LEASE_STALE_S = 30.0
LEASE_STALE_ENV = "ASSAY_LEASE_STALE_S"
HOST = socket.gethostname()


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
def heartbeat(store: RunStore, lease: Lease) -> Iterator[None]:
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
