"""Schema migrations of the run store: each applied once, all of it or none."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from assay.store import migrations
from assay.store.runstore import RunStore

OPEN_STORE = "import sys; from assay.store.runstore import RunStore; RunStore.open(sys.argv[1])"


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY name")]


def test_processes_creating_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, str(store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    assert applied(store / "runs.sqlite") == [name for name, _ in migrations.MIGRATIONS]


def test_a_failing_migration_leaves_no_partial_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = ("9999_broken", "CREATE TABLE half (x INTEGER); CREATE TABLE oops (")
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    db = sqlite3.connect(tmp_path / "s.sqlite")
    with pytest.raises(sqlite3.OperationalError):
        migrations.migrate(db)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "runs" in tables and "half" not in tables  # earlier ones committed, the broken one not
    assert "9999_broken" not in {row[0] for row in db.execute("SELECT name FROM _migrations")}


def test_reopening_a_store_applies_nothing_again(tmp_path: Path) -> None:
    RunStore.open(tmp_path)
    db = sqlite3.connect(tmp_path / "runs.sqlite")
    assert migrations.migrate(db) == []
