"""The dashboard's own notes on runs ("archived"), in ``ui.sqlite`` beside the run store.

The run store stays append-only and untouched: this is a separate file with one table, made
only when a write is allowed and asked for. Each call opens its own connection, so the
dashboard's threads never share one.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

FILENAME = "ui.sqlite"


class ArchiveBook:
    def __init__(self, store_dir: Path) -> None:
        self.path = store_dir / FILENAME

    def archived(self) -> set[str]:
        """Ids of archived runs; nothing is created when the file does not exist."""
        if not self.path.exists():
            return set()
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("SELECT run_id FROM archived").fetchall()
        except sqlite3.OperationalError:
            return set()
        finally:
            db.close()
        return {r[0] for r in rows}

    def set_archived(self, run_id: str, archived: bool) -> None:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS archived (run_id TEXT PRIMARY KEY, at REAL)")
                if archived:
                    db.execute(
                        "INSERT OR REPLACE INTO archived VALUES (?, ?)", (run_id, time.time())
                    )
                else:
                    db.execute("DELETE FROM archived WHERE run_id = ?", (run_id,))
        finally:
            db.close()
