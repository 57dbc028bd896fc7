"""SQLite connections that several processes can open at once: the run store and the cache."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_S = 30.0
_FIRST_WAIT_S = 0.005
_LONGEST_WAIT_S = 0.2


def connect_wal(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout, and without an fsync per commit (WAL +
    NORMAL: a committed row survives a killed process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    _switch_to_wal(db)
    db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """Two processes creating a file at once both switch it to WAL. The switch needs an
    exclusive lock, and SQLite answers a contended one with "database is locked" at once
    instead of calling the busy handler (it could deadlock), so wait for it here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    wait = _FIRST_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + wait > deadline:
                raise
        time.sleep(wait)
        wait = min(2 * wait, _LONGEST_WAIT_S)
