"""Content-addressed completion cache in SQLite, keyed by the full request."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from assay.errors import UserInputError
from assay.records import Completion, ModelConfig, Request, canonical_json, sha256_text
from assay.secrets import redact
from assay.store.sqlite import connect_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    completion TEXT NOT NULL,
    checksum TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


def cache_key(model: ModelConfig, request: Request) -> str:
    """Everything that can change the reply is in the key; the API key never is."""
    material = {
        "provider": model.provider,
        "model": model.model,
        # Several endpoints serve one model: the key names them all, in any order, and never
        # the one that answered.
        "base_url": sorted(model.base_url) if isinstance(model.base_url, tuple) else model.base_url,
        "model_params": model.params,
        "messages": [m.model_dump() for m in request.messages],
        "params": request.params.model_dump(),
        "repeat": request.repeat,
    }
    return sha256_text(canonical_json(material))


class ResponseCache:
    """Safe for several processes at once (WAL, busy timeout) and for threads (one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            # No fsync per entry (one per entry blocked the event loop and cut a run's
            # throughput by two thirds); an entry lost to a power cut is a repeated call.
            self._db = connect_wal(path)
            self._db.execute(SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise UserInputError(
                f"Response cache {path} is unreadable ({exc})",
                "delete the file, which holds only cached replies, or pass --no-cache",
            ) from None
        self.corrupt_entries = 0

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT completion, checksum FROM completions WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        text, checksum = row
        try:
            if sha256_text(text) != checksum:
                raise ValueError("checksum mismatch")
            completion = Completion.model_validate_json(text)
        except ValueError:  # a damaged or half-written entry (pydantic errors are ValueErrors)
            self._drop_corrupt(key)
            return None
        return completion.model_copy(update={"cached": True})

    def put(self, key: str, completion: Completion) -> None:
        # The cache sits in the store's folder: a reply echoing a key must not land there.
        text = redact(completion.model_copy(update={"cached": False}).model_dump_json())
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?)",
                (key, text, sha256_text(text), time.time()),
            )
            self._db.commit()

    def _drop_corrupt(self, key: str) -> None:
        # A damaged entry is never used: it is deleted and the call is made again.
        self.corrupt_entries += 1
        with self._lock:
            self._db.execute("DELETE FROM completions WHERE key = ?", (key,))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
