"""The run store: the append-only record of runs, results, scores and iterations (SQLite).

Reports, the dashboard and ``assay runs/show/compare/export`` only read it.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, groupby, islice
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from assay import __version__
from assay.errors import UserInputError
from assay.records import Completion, Request, Sample, Spent
from assay.scoring.score import Score
from assay.secrets import redact, redactor
from assay.store.migrations import MIGRATIONS, migrate
from assay.store.run_record import StoredRun
from assay.store.sqlite import connect_wal
from assay.text import natural_key

_T = TypeVar("_T")

STORE_ENV = "ASSAY_STORE"
DEFAULT_STORE_DIR = ".assay"
STORE_FILE = "runs.sqlite"
_SAMPLES_BATCH = 1_000  # rows per insert: a streamed dataset is never held whole


def store_dir(explicit: str | Path | None = None) -> Path:
    """``--store PATH`` wins, then ``$ASSAY_STORE``, then ``.assay/`` in the working directory."""
    path = Path(explicit or os.environ.get(STORE_ENV) or DEFAULT_STORE_DIR)
    if path.exists() and not path.is_dir():
        raise UserInputError(
            f"The run store {path} is a file, not a folder",
            "pass --store a folder (it is created if missing)",
        )
    return path


class RunRecord(BaseModel):
    id: str
    kind: str
    status: str
    created_at: float
    updated_at: float
    assay_version: str
    config: StoredRun
    summary: dict[str, Any] | None = None


class ResultRecord(BaseModel):
    """One call's outcome for one sample under one variant (a model, or a model + prompt)."""

    run_id: str
    variant: str
    sample_id: str
    repeat: int = 0
    request: Request
    completion: Completion | None = None
    error_kind: str | None = None
    error: str | None = None
    scores: dict[str, Score] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.variant, self.sample_id, self.repeat)


@dataclass(frozen=True, slots=True)
class CompletionRow:
    """The numbers of a completion that analysis reads; no text."""

    cost_usd: float | None
    cached: bool
    latency_s: float
    input_tokens: int | None
    output_tokens: int | None
    batch: bool = False  # answered through a batch API: no latency of its own


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """A score as analysis reads it: no reason, and only the details that were asked for."""

    value: float | None
    status: str
    details: dict[str, Any]

    @property
    def is_scored(self) -> bool:
        return self.status == "scored"


@dataclass(frozen=True, slots=True)
class ResultRow:
    """A result for analysis: built without validation, dropped once folded into figures."""

    variant: str
    sample_id: str
    repeat: int
    error_kind: str | None
    completion: CompletionRow | None
    scores: dict[str, ScoreRow]


@dataclass(frozen=True, slots=True)
class SampleResult:
    """A full result with its sample's reference (None when the run saved no samples)."""

    result: ResultRecord
    reference: str | None


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a run: one process at a time executes it (``jobs.lifecycle`` decides when a
    lease is stale). ``token`` tells two holders in one process apart."""

    run_id: str
    token: str
    pid: int
    host: str
    heartbeat: float


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A provider batch job a run submitted: enough to find it again after a crash (``model``
    is the model's label in the run; ``custom_ids`` name the requests it holds). ``status``
    is the provider's word for it, and ``collected`` once its results are saved."""

    run_id: str
    batch_id: str
    provider: str
    model: str
    input_file_id: str | None
    custom_ids: tuple[str, ...]
    status: str
    created_at: float
    updated_at: float

    @property
    def collected(self) -> bool:
        return self.status == BATCH_COLLECTED


BATCH_COLLECTED = "collected"


@dataclass(frozen=True, slots=True)
class ErrorTally:
    """How many of a run's calls ended as errors, and its most common error."""

    calls: int
    failed: int
    most_common: str | None
    most_common_count: int


# Rows fetched per hold of the store's lock while streaming results.
_ROWS_BATCH = 500

# One row per (result, metric); a result without scores comes once, with a NULL metric.
_RESULT_ROWS_SQL = """
    SELECT r.variant, r.sample_id, r.repeat, r.error_kind, r.completion,
           s.metric, s.value, s.status, s.details
    FROM results AS r LEFT JOIN scores AS s
      ON s.run_id = r.run_id AND s.variant = r.variant
     AND s.sample_id = r.sample_id AND s.repeat = r.repeat
    WHERE r.run_id = ?{variant}
    ORDER BY r.variant, r.sample_id, r.repeat, s.metric
"""


# One row per result, its scores gathered into a JSON array: a sort moves one row per result.
# Sample ids in natural order (2 before 10), then variant and repeat.
_SAMPLE_RESULTS_SQL = """
    SELECT r.variant, r.sample_id, r.repeat, r.request, r.completion, r.error_kind, r.error,
           json_extract(sm.sample, '$.reference'),
           (SELECT json_group_array(json_array(s.metric, s.value, s.status, s.reason, s.details))
              FROM scores AS s
             WHERE s.run_id = r.run_id AND s.variant = r.variant
               AND s.sample_id = r.sample_id AND s.repeat = r.repeat)
    FROM results AS r LEFT JOIN samples AS sm
      ON sm.run_id = r.run_id AND sm.sample_id = r.sample_id
    WHERE r.run_id = ?
    ORDER BY natural_key(r.sample_id), r.sample_id, r.variant, r.repeat
"""


# The tables that hold a run's own rows, copied as stored when runs are merged.
RunTable = Literal["samples", "results", "scores"]
RunRows = tuple[RunTable, Iterable[tuple[Any, ...]]]
_RUN_ROWS_SQL: dict[RunTable, str] = {
    t: f"SELECT * FROM {t} WHERE run_id = ?" for t in ("samples", "results", "scores")
}


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class RunStore:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """``read_only``: opened with SQLite's ``mode=ro``, no WAL setup and no migration, so
        a store on a read-only filesystem (a share, a CI artefact) can be read."""
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = _connect_read_only(path) if read_only else _connect(path)
        except sqlite3.DatabaseError as exc:
            raise UserInputError(
                f"Run store {path} is unreadable ({exc})", "move it aside or pass --store DIR"
            ) from None
        # For sample_results' order; registered once: redefining it under a live cursor fails.
        self._db.create_function("natural_key", 1, natural_key, deterministic=True)

    @classmethod
    def open(cls, directory: str | Path | None = None, *, create: bool = True) -> RunStore:
        """``create=False`` for commands that only read: a missing store is an error, not a
        new empty file, and the store is opened read-only."""
        path = store_dir(directory) / STORE_FILE
        if not create and not path.is_file():
            raise UserInputError(
                f"No run store at {path}", "list runs with: assay runs, or pass --store DIR"
            )
        return cls(path, read_only=not create)

    @staticmethod
    def exists(directory: str | Path | None = None) -> bool:
        """Whether a store has been created there (read-only commands never create one)."""
        return (store_dir(directory) / STORE_FILE).is_file()

    def create_run(self, record: StoredRun) -> str:
        run_id = new_run_id()
        now = time.time()
        config = redact(record.model_dump_json())
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, 'running', ?, ?, ?, ?, NULL)",
                (run_id, record.kind, now, now, __version__, config),
            )
        return run_id

    def set_status(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE runs SET status = ?, updated_at = ?, summary = COALESCE(?, summary) "
                "WHERE id = ?",
                (status, time.time(), _json_or_none(summary), run_id),
            )

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            # A prefix is matched literally: % and _ in it are not LIKE wildcards.
            prefix = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._db.execute(
                "SELECT * FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY created_at DESC",
                (run_id, f"{prefix}%"),
            ).fetchall()
        if not rows:
            raise UserInputError(f"No run {run_id!r} in {self.path}", "list runs with: assay runs")
        if len(rows) > 1 and rows[0][0] != run_id:
            raise UserInputError(f"Run id {run_id!r} is ambiguous", "give more of the id")
        return _run_record(rows[0])

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_run_record(r) for r in rows]

    def save_text(self, kind: str, text: str, digest: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO texts VALUES (?, ?, ?)", (digest, kind, redact(text))
            )

    def get_text(self, digest: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM texts WHERE hash = ?", (digest,)).fetchone()
        return row[0] if row else None

    def save_samples(
        self, run_id: str, samples: Iterable[Sample], split_of: dict[str, str] | None = None
    ) -> None:
        """The rows a run used (inputs and references), so reports need not the data file.

        ``samples`` may be a generator: rows go in in batches, so none holds every row, and
        in one transaction, so a run has all of its samples or none.
        """
        split_of = split_of or {}
        rows = ((run_id, s.id, split_of.get(s.id), redact(s.model_dump_json())) for s in samples)
        with self._lock, self._db:
            while batch := list(islice(rows, _SAMPLES_BATCH)):
                self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)", batch)

    def samples(self, run_id: str) -> dict[str, Sample]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sample FROM samples WHERE run_id = ?", (run_id,)
            ).fetchall()
        loaded = (Sample.model_validate_json(r[0]) for r in rows)
        return {s.id: s for s in loaded}

    def save_result(self, result: ResultRecord, spent: Spent | None = None) -> None:
        """The completion, its scores and the run's spend so far land in one transaction."""
        self.save_results([result], spent)

    def save_results(self, results: Sequence[ResultRecord], spent: Spent | None = None) -> None:
        """Results of one run, their scores and its spend so far in one transaction: all of
        them or none (a group commit costs a fraction of one commit per result)."""
        clean = redactor()
        rows = [_result_row(r, clean) for r in results]
        scores = [_score_row(r, n, s, clean) for r in results for n, s in r.scores.items()]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", scores
            )
            if spent is not None:
                for run_id in {r.run_id for r in results}:
                    self._save_spent(run_id, spent)

    def save_spent(self, run_id: str, spent: Spent) -> None:
        """What the run has used, for calls whose result was not saved (a budget stop)."""
        with self._lock, self._db:
            self._save_spent(run_id, spent)

    def _save_spent(self, run_id: str, spent: Spent) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO run_spend VALUES (?, ?, ?)",
            (run_id, spent.calls, spent.cost_usd),
        )

    def spent(self, run_id: str) -> Spent:
        """What the run's earlier sessions used, as of their last saved result."""
        with self._lock:
            row = self._db.execute(
                "SELECT calls, cost_usd FROM run_spend WHERE run_id = ?", (run_id,)
            ).fetchone()
        return Spent(calls=row[0], cost_usd=row[1]) if row else Spent()

    def results(self, run_id: str) -> list[ResultRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM results WHERE run_id = ? ORDER BY variant, sample_id, repeat",
                (run_id,),
            ).fetchall()
            score_rows = self._db.execute(
                "SELECT * FROM scores WHERE run_id = ?", (run_id,)
            ).fetchall()
        scores: dict[tuple[str, str, int], dict[str, Score]] = {}
        for r in score_rows:
            scores.setdefault((r[1], r[2], r[3]), {})[r[4]] = Score(
                value=r[5], status=r[6], reason=r[7], details=json.loads(r[8])
            )
        return [_result_record(r, scores.get((r[1], r[2], r[3]), {})) for r in rows]

    def result_rows(
        self, run_id: str, variant: str | None = None, detail_keys: Collection[str] = ()
    ) -> Iterator[ResultRow]:
        """A run's results in (variant, sample, repeat) order, streamed from a cursor.

        For analysis of runs of any size: memory stays flat because rows come in batches and
        each is built from the stored JSON alone (no pydantic). Score details are cut down to
        ``detail_keys``. The lock is held per batch, so the caller may use the store between
        rows. ``results()`` is the one that gives full records.
        """
        sql = _RESULT_ROWS_SQL.format(variant="" if variant is None else " AND r.variant = ?")
        params = (run_id,) if variant is None else (run_id, variant)
        with self._lock:
            cursor = self._db.execute(sql, params)
        try:
            joined = chain.from_iterable(self._batches(cursor))
            yield from _result_rows(joined, frozenset(detail_keys))
        finally:
            # Not under the lock: an abandoned generator may be closed by the garbage collector
            # while this thread holds it. SQLite's serialized mode keeps the close safe.
            cursor.close()

    def _batches(self, cursor: sqlite3.Cursor) -> Iterator[list[Any]]:
        while True:
            with self._lock:
                batch = cursor.fetchmany(_ROWS_BATCH)
            if not batch:
                return
            yield batch

    def sample_results(self, run_id: str) -> Iterator[SampleResult]:
        """A run's full results with their references, for per-sample export: streamed from a
        cursor in batches (memory stays flat), sample ids in natural order, then variant and
        repeat. The lock is held per batch, as in ``result_rows``."""
        with self._lock:
            cursor = self._db.execute(_SAMPLE_RESULTS_SQL, (run_id,))
        try:
            for batch in self._batches(cursor):
                yield from (_sample_result(run_id, row) for row in batch)
        finally:
            cursor.close()

    def metric_names(self, run_id: str) -> list[str]:
        """Every metric a run's results hold scores for, sorted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT metric FROM scores WHERE run_id = ? ORDER BY metric", (run_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def completed_keys(self, run_id: str) -> set[tuple[str, str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT variant, sample_id, repeat FROM results WHERE run_id = ?", (run_id,)
            ).fetchall()
        return {(r[0], r[1], r[2]) for r in rows}

    def save_iteration(self, run_id: str, idx: int, record: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO iterations VALUES (?, ?, ?, ?)",
                (run_id, idx, redact(json.dumps(record)), time.time()),
            )

    def iterations(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM iterations WHERE run_id = ? ORDER BY idx", (run_id,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def save_batch(self, batch: BatchRecord, spent: Spent | None = None) -> None:
        """A submitted batch and the run's spend (its calls counted) in one transaction, so a
        resume finds the batch rather than paying for its requests again."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.run_id,
                    batch.batch_id,
                    batch.provider,
                    batch.model,
                    batch.input_file_id,
                    json.dumps(list(batch.custom_ids)),
                    batch.status,
                    batch.created_at,
                    batch.updated_at,
                ),
            )
            if spent is not None:
                self._save_spent(batch.run_id, spent)

    def set_batch_status(self, run_id: str, batch_id: str, status: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE batches SET status = ?, updated_at = ? WHERE run_id = ? AND batch_id = ?",
                (status, time.time(), run_id, batch_id),
            )

    def batches(self, run_id: str) -> list[BatchRecord]:
        """The run's batch jobs, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM batches WHERE run_id = ? ORDER BY created_at, batch_id", (run_id,)
            ).fetchall()
        return [_batch_record(r) for r in rows]

    def error_tally(self, run_id: str) -> ErrorTally:
        with self._lock:
            calls, failed = self._db.execute(
                "SELECT COUNT(*), COUNT(error_kind) FROM results WHERE run_id = ?", (run_id,)
            ).fetchone()
            top = self._db.execute(
                "SELECT error, COUNT(*) AS n FROM results WHERE run_id = ? AND error_kind IS NOT "
                "NULL GROUP BY error ORDER BY n DESC, error LIMIT 1",
                (run_id,),
            ).fetchone()
        return ErrorTally(calls, failed, top[0] if top else None, top[1] if top else 0)

    def insert_lease(self, lease: Lease) -> bool:
        """Take a run's lease if nobody holds it; False when somebody does."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO run_leases VALUES (?, ?, ?, ?, ?)",
                (lease.run_id, lease.token, lease.pid, lease.host, lease.heartbeat),
            )
        return cursor.rowcount == 1

    def lease(self, run_id: str) -> Lease | None:
        with self._lock:
            row = self._db.execute(
                "SELECT run_id, token, pid, host, heartbeat FROM run_leases WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        return Lease(*row) if row else None

    def take_over_lease(self, old: Lease, new: Lease) -> bool:
        """Replace ``old`` by ``new`` only if ``old`` still holds the run, unchanged: of two
        processes taking over one stale lease, exactly one wins."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE run_leases SET token = ?, pid = ?, host = ?, heartbeat = ? "
                "WHERE run_id = ? AND token = ? AND heartbeat = ?",
                (new.token, new.pid, new.host, new.heartbeat, old.run_id, old.token, old.heartbeat),
            )
        return cursor.rowcount == 1

    def refresh_lease(self, run_id: str, token: str) -> bool:
        """The holder's heartbeat; False when its lease was taken over."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE run_leases SET heartbeat = ? WHERE run_id = ? AND token = ?",
                (time.time(), run_id, token),
            )
        return cursor.rowcount == 1

    def release_lease(self, run_id: str, token: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM run_leases WHERE run_id = ? AND token = ?", (run_id, token)
            )

    def integrity_problems(self) -> list[str]:
        """SQLite's own check plus the store's invariants; empty when all is well."""
        with self._lock:
            problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
            orphans = self._db.execute(
                "SELECT COUNT(*) FROM results WHERE run_id NOT IN (SELECT id FROM runs)"
            ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} results belong to no run")
        return problems

    def run_rows(self, table: RunTable, run_id: str) -> Iterator[tuple[Any, ...]]:
        """A run's rows of one of its tables as stored, run id left out, streamed in batches
        (the lock held per batch): what ``insert_run`` writes under another run."""
        with self._lock:
            cursor = self._db.execute(_RUN_ROWS_SQL[table], (run_id,))
        try:
            for batch in self._batches(cursor):
                yield from (row[1:] for row in batch)
        finally:
            cursor.close()

    def insert_run(
        self, record: StoredRun, parts: Iterable[RunRows], spent: Spent, summary: dict[str, Any]
    ) -> str:
        """A new, complete run holding rows read from other runs (``run_rows``), in one
        transaction: it is whole or absent. Rows are inserted, never replaced, so two parts
        holding one row is an error and nothing is written."""
        run_id, now = new_run_id(), time.time()
        config = redact(record.model_dump_json())
        try:
            with self._lock, self._db:
                self._db.execute(
                    "INSERT INTO runs VALUES (?, ?, 'complete', ?, ?, ?, ?, ?)",
                    (run_id, record.kind, now, now, __version__, config, _json_or_none(summary)),
                )
                for table, rows in parts:
                    if table not in _RUN_ROWS_SQL:  # a table name goes into the SQL text
                        raise ValueError(f"not a table of a run's rows: {table!r}")
                    for batch in _chunks(rows, _SAMPLES_BATCH):
                        marks = ", ".join("?" * (len(batch[0]) + 1))  # the run id, then the row
                        self._db.executemany(
                            f"INSERT INTO {table} VALUES ({marks})", [(run_id, *r) for r in batch]
                        )
                self._save_spent(run_id, spent)
        except sqlite3.IntegrityError as exc:
            raise UserInputError(
                f"The runs to merge hold the same rows ({exc})", "merge each run once"
            ) from None
        return run_id

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _chunks(rows: Iterable[_T], size: int) -> Iterator[list[_T]]:
    rows = iter(rows)
    while chunk := list(islice(rows, size)):
        yield chunk


def _json_or_none(value: dict[str, Any] | None) -> str | None:
    return redact(json.dumps(value)) if value is not None else None


def _connect(path: Path) -> sqlite3.Connection:
    db = connect_wal(path)
    db.execute("PRAGMA foreign_keys=ON")
    migrate(db)
    return db


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. A store that needs a migration is upgraded first where
    it can be written, as any command did before; where it cannot, that is one line."""
    db = _open_read_only(path)
    if not _pending_migrations(db):
        return db
    db.close()
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        _connect(path).close()
        return _open_read_only(path)
    raise UserInputError(
        f"Run store {path} needs an upgrade (it was written by an older Assay) and is read-only",
        "copy its folder somewhere writable and pass --store DIR",
    )


def _open_read_only(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=30000")
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        # A WAL store needs its index file (-shm), which a read-only filesystem cannot
        # create. Nobody can be writing a store there, so it is read as immutable.
        db.close()
        if os.access(path.parent, os.W_OK):
            raise
        db = sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
    return db


def _pending_migrations(db: sqlite3.Connection) -> set[str]:
    try:
        applied = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    except sqlite3.OperationalError:  # a new, empty file: no table yet
        applied = set()
    return {name for name, _ in MIGRATIONS} - applied


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        kind=row[1],
        status=row[2],
        created_at=row[3],
        updated_at=row[4],
        assay_version=row[5],
        config=StoredRun.read(row[1], json.loads(row[6])),
        summary=json.loads(row[7]) if row[7] else None,
    )


def _batch_record(row: tuple[Any, ...]) -> BatchRecord:
    run_id, batch_id, provider, model, input_file_id, custom_ids, status, created, updated = row
    return BatchRecord(
        run_id=run_id,
        batch_id=batch_id,
        provider=provider,
        model=model,
        input_file_id=input_file_id,
        custom_ids=tuple(json.loads(custom_ids)),
        status=status,
        created_at=created,
        updated_at=updated,
    )


def _result_row(r: ResultRecord, clean: Callable[[str], str]) -> tuple[Any, ...]:
    completion = clean(r.completion.model_dump_json()) if r.completion else None
    return (
        r.run_id,
        r.variant,
        r.sample_id,
        r.repeat,
        clean(r.request.model_dump_json()),
        completion,
        r.error_kind,
        clean(r.error) if r.error else r.error,
        time.time(),
    )


def _score_row(
    r: ResultRecord, metric: str, s: Score, clean: Callable[[str], str]
) -> tuple[Any, ...]:
    return (
        r.run_id,
        r.variant,
        r.sample_id,
        r.repeat,
        metric,
        s.value,
        s.status,
        clean(s.reason),
        clean(json.dumps(s.details, default=str)),
    )


def _result_rows(joined: Iterable[tuple[Any, ...]], keep: frozenset[str]) -> Iterator[ResultRow]:
    """Merge the join's consecutive rows of one result (one per metric) into one ResultRow."""
    for (variant, sample_id, repeat), group in groupby(joined, key=itemgetter(0, 1, 2)):
        rows = list(group)
        scores = {r[5]: _score_of(r, keep) for r in rows if r[5] is not None}
        completion = _completion_of(rows[0][4])
        yield ResultRow(variant, sample_id, repeat, rows[0][3], completion, scores)


def _completion_of(blob: str | None) -> CompletionRow | None:
    """The fields analysis needs, with ``Completion``'s defaults and number types."""
    if not blob:
        return None
    data = json.loads(blob)
    return CompletionRow(
        cost_usd=_optional(float, data.get("cost_usd")),
        cached=bool(data.get("cached", False)),
        latency_s=float(data.get("latency_s", 0.0)),
        input_tokens=_optional(int, data.get("input_tokens")),
        output_tokens=_optional(int, data.get("output_tokens")),
        batch=bool(data.get("batch", False)),
    )


def _optional(kind: Callable[[Any], _T], value: Any) -> _T | None:
    return None if value is None else kind(value)


def _score_of(row: tuple[Any, ...], keep: frozenset[str]) -> ScoreRow:
    details = {k: v for k, v in json.loads(row[8]).items() if k in keep} if keep else {}
    return ScoreRow(value=row[6], status=row[7], details=details)


def _result_record(row: tuple[Any, ...], scores: dict[str, Score]) -> ResultRecord:
    return ResultRecord(
        run_id=row[0],
        variant=row[1],
        sample_id=row[2],
        repeat=row[3],
        request=Request.model_validate_json(row[4]),
        completion=Completion.model_validate_json(row[5]) if row[5] else None,
        error_kind=row[6],
        error=row[7],
        scores=scores,
    )


def _sample_result(run_id: str, row: tuple[Any, ...]) -> SampleResult:
    scores = {
        metric: Score(value=value, status=status, reason=reason, details=json.loads(details))
        for metric, value, status, reason, details in json.loads(row[8])
    }
    result = _result_record((run_id, *row[:7]), scores)
    return SampleResult(result, row[7] if isinstance(row[7], str) else None)
