"""Named schema migrations, applied in order, each once (recorded in ``_migrations``)."""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_runs_results_scores",
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            assay_version TEXT NOT NULL,
            config TEXT NOT NULL,
            summary TEXT
        );
        CREATE TABLE texts (
            hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            text TEXT NOT NULL
        );
        CREATE TABLE results (
            run_id TEXT NOT NULL REFERENCES runs(id),
            variant TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            repeat INTEGER NOT NULL,
            request TEXT NOT NULL,
            completion TEXT,
            error_kind TEXT,
            error TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, variant, sample_id, repeat)
        );
        CREATE TABLE scores (
            run_id TEXT NOT NULL,
            variant TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            repeat INTEGER NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            details TEXT NOT NULL,
            PRIMARY KEY (run_id, variant, sample_id, repeat, metric),
            FOREIGN KEY (run_id, variant, sample_id, repeat)
                REFERENCES results(run_id, variant, sample_id, repeat)
        );
        """,
    ),
    (
        "0002_optimize_iterations",
        """
        CREATE TABLE iterations (
            run_id TEXT NOT NULL REFERENCES runs(id),
            idx INTEGER NOT NULL,
            record TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, idx)
        );
        """,
    ),
    (
        "0003_samples",
        """
        CREATE TABLE samples (
            run_id TEXT NOT NULL REFERENCES runs(id),
            sample_id TEXT NOT NULL,
            split TEXT,
            sample TEXT NOT NULL,
            PRIMARY KEY (run_id, sample_id)
        );
        """,
    ),
    (
        "0004_run_spend",
        """
        CREATE TABLE run_spend (
            run_id TEXT PRIMARY KEY REFERENCES runs(id),
            calls INTEGER NOT NULL,
            cost_usd REAL NOT NULL
        );
        """,
    ),
    (
        "0005_run_leases",
        """
        CREATE TABLE run_leases (
            run_id TEXT PRIMARY KEY REFERENCES runs(id),
            token TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            heartbeat REAL NOT NULL
        );
        """,
    ),
    (
        "0006_batches",
        """
        CREATE TABLE batches (
            run_id TEXT NOT NULL REFERENCES runs(id),
            batch_id TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            input_file_id TEXT,
            custom_ids TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (run_id, batch_id)
        );
        """,
    ),
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    return [name for name, sql in MIGRATIONS if _apply_once(db, name, sql)]


def _apply_once(db: sqlite3.Connection, name: str, sql: str) -> bool:
    """One write transaction per migration: all of it or none. The check is made inside it,
    so two processes opening a new store at once cannot both apply the same migration."""
    db.execute("BEGIN IMMEDIATE")  # sqlite3 would run DDL outside any transaction otherwise
    try:
        if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
            db.execute("ROLLBACK")
            return False
        for statement in filter(str.strip, sql.split(";")):
            db.execute(statement)
        db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return True
