"""Per-sample export: one flat record per (sample, variant, repeat), streamed from the run store.

``assay export`` writes the records as CSV, JSONL or Parquet, ``assay show --samples --json``
prints them under ``"samples"`` and ``RunReport.to_pandas()`` makes them a DataFrame: the same
columns everywhere. Columns, in order: ``FIXED_COLUMNS``; then, for each metric (the primary
first), ``score.M`` (the value, empty when not scored), ``score.M.status``, ``score.M.reason``
and, except for the judge, ``score.M.details``; then, when a judge ran, ``judge.verdict``,
``judge.reasoning`` and ``judge.cost_usd``.

Rows come from ``RunStore.sample_results`` one batch at a time and are written as they come,
so a run of any size is exported in flat memory. Sample ids are in natural order (2 before 10).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from assay.errors import UserInputError
from assay.files import atomic_path, refuse_clobber
from assay.records import Request, repair_surrogates
from assay.scoring.score import Score
from assay.secrets import redact
from assay.store.runstore import RunStore, SampleResult

if TYPE_CHECKING:
    import pandas as pd

ExportFormat = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
ColumnKind = Literal["str", "int", "float", "bool", "json"]
Record = dict[str, Any]

JUDGE = "judge"  # the key judge scores are stored under (scoring.scorer.JUDGE_SCORE)
PARQUET_INSTALL = "pip install 'assay[parquet]'"
PANDAS_INSTALL = "pip install 'assay[pandas]'"
_PARQUET_BATCH = 2_000  # rows per Parquet row group write: bounded memory


class TextSink(Protocol):
    """Where text rows go: a file, or stdout (the CLI escapes control codes there)."""

    def write(self, text: str, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ColumnKind


FIXED_COLUMNS = (
    Column("sample_id", "str"),
    Column("repeat", "int"),
    Column("variant", "str"),
    Column("model", "str"),
    Column("input", "str"),
    Column("reference", "str"),
    Column("response", "str"),
    Column("error_kind", "str"),
    Column("error", "str"),
    Column("latency_s", "float"),
    Column("input_tokens", "int"),
    Column("output_tokens", "int"),
    Column("cost_usd", "float"),
    Column("cached", "bool"),
)
JUDGE_COLUMNS = (
    Column("judge.verdict", "str"),
    Column("judge.reasoning", "str"),
    Column("judge.cost_usd", "float"),
)


@dataclass(frozen=True)
class SampleTable:
    """What one run's export holds: its columns, and what the rows need besides the store."""

    run_id: str
    primary_metric: str
    metrics: tuple[str, ...]
    judged: bool
    models: dict[str, str]  # variant key -> model spec
    only_model: str | None  # the run's one model (every optimize candidate runs it)
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def model_of(self, variant: str) -> str | None:
        return self.models.get(variant, self.only_model)


def sample_table(store: RunStore, run_id: str) -> SampleTable:
    """The columns of a run's export: every metric its results hold scores for."""
    run = store.get_run(run_id)
    primary = run.config.primary_metric
    metrics = (primary, *(m for m in store.metric_names(run.id) if m != primary))
    judged = JUDGE in metrics or bool(run.config.judges)
    models = {v.key: v.model for v in run.config.variants}
    only_model = run.config.models[0] if len(run.config.models) == 1 else None
    columns = (
        *FIXED_COLUMNS,
        *(c for m in metrics for c in _metric_columns(m)),
        *(JUDGE_COLUMNS if judged else ()),
    )
    return SampleTable(run.id, primary, metrics, judged, models, only_model, columns)


def _metric_columns(metric: str) -> tuple[Column, ...]:
    base = f"score.{metric}"
    details = () if metric == JUDGE else (Column(f"{base}.details", "json"),)
    return (
        Column(base, "float"),
        Column(f"{base}.status", "str"),
        Column(f"{base}.reason", "str"),
        *details,
    )


def sample_records(
    store: RunStore, table: SampleTable, *, failures: bool = False
) -> Iterator[Record]:
    """The run's records in natural sample order; ``failures``: only those whose primary
    score is missing, unscored, an error or below 1 (what ``show --failures`` lists)."""
    for item in store.sample_results(table.run_id):
        if failures and not is_failure(item.result.scores.get(table.primary_metric)):
            continue
        yield _record(item, table)


def is_failure(score: Score | None) -> bool:
    return score is None or not score.is_scored or (score.value or 0) < 1


def _record(item: SampleResult, table: SampleTable) -> Record:
    result, completion = item.result, item.result.completion
    record: Record = {
        "sample_id": result.sample_id,
        "repeat": result.repeat,
        "variant": result.variant,
        "model": table.model_of(result.variant),
        "input": request_input(result.request),
        "reference": item.reference,
        "response": completion.text if completion else None,
        "error_kind": result.error_kind,
        "error": result.error,
        "latency_s": completion.latency_s if completion else None,
        "input_tokens": completion.input_tokens if completion else None,
        "output_tokens": completion.output_tokens if completion else None,
        "cost_usd": completion.cost_usd if completion else None,
        "cached": completion.cached if completion else None,
    }
    for metric in table.metrics:
        record.update(_score_cells(metric, result.scores.get(metric)))
    if table.judged:
        record.update(_judge_cells(result.scores.get(JUDGE)))
    return _cleaned(record)


def request_input(request: Request) -> str:
    """The task input as sent, without the system prompt (the prompt under test)."""
    return "\n\n".join(m.content for m in request.messages if m.role != "system")


def _score_cells(metric: str, score: Score | None) -> Record:
    base = f"score.{metric}"
    cells: Record = {
        base: score.value if score is not None and score.is_scored else None,
        f"{base}.status": score.status if score is not None else None,
        f"{base}.reason": score.reason if score is not None else None,
    }
    if metric != JUDGE:  # the judge's details are its whole audit: its own columns instead
        cells[f"{base}.details"] = score.details if score is not None and score.details else None
    return cells


def _judge_cells(score: Score | None) -> Record:
    details = score.details if score is not None else {}
    verdict = details.get("verdict")
    if verdict is None and details.get("judgements"):  # repeats or a panel: every verdict
        found = [str(j["verdict"]) for j in details["judgements"] if j.get("verdict") is not None]
        verdict = "; ".join(found) or None
    cost = details.get("cost_usd")
    return {
        "judge.verdict": None if verdict is None else str(verdict),
        "judge.reasoning": details.get("rationale"),
        "judge.cost_usd": None if cost is None else float(cost),
    }


def _cleaned(record: Record) -> Record:
    """Text as any file can hold it (no half emoji) with every known secret redacted: a store
    written by an older Assay may still hold one."""
    return {k: _clean(v) for k, v in record.items()}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(repair_surrogates(value))
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


# --------------------------------------------------------------------------- writing


def export_to_file(
    store: RunStore, run_id: str, fmt: ExportFormat, path: Path, *, failures: bool = False
) -> int:
    """Write the run's records to ``path``, atomically; returns the number of rows. Refused
    before a row is read when ``path`` is the run's data or a prompt, or in the store."""
    if fmt == "parquet":
        require_pyarrow()
    check_output(path, run_inputs(store, run_id))
    table = sample_table(store, run_id)
    records = sample_records(store, table, failures=failures)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            return _write_parquet(tmp, table, records)
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            return _write_text(handle, fmt, table, records)


def run_inputs(store: RunStore, run_id: str) -> list[str | Path]:
    """What an export must never overwrite: the store's folder, the run's data and prompts."""
    run = store.get_run(run_id)
    job = run.config.job
    prompts = [*job.get("prompts", []), *([job["prompt"]] if "prompt" in job else [])]
    return [store.path.parent, run.config.data, *(str(p) for p in prompts if p)]


def check_output(path: Path, inputs: Iterable[str | Path]) -> None:
    if not path.parent.is_dir():
        raise UserInputError(f"Cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UserInputError(f"Cannot write {path}: it is a directory", "give a file path")
    refuse_clobber(path, inputs)


def export_to_stream(
    store: RunStore, run_id: str, fmt: ExportFormat, out: TextSink, *, failures: bool = False
) -> int:
    """Write the run's records as CSV or JSONL to ``out`` (stdout); returns the number of
    rows. JSONL is written in ASCII (escapes for the rest): no control code can reach a
    terminal and the data stays exact."""
    if fmt == "parquet":
        raise UserInputError("Parquet is a binary file", "pass -o FILE.parquet")
    table = sample_table(store, run_id)
    records = sample_records(store, table, failures=failures)
    return _write_text(out, fmt, table, records, ascii_only=True)


def _write_text(
    out: TextSink,
    fmt: str,
    table: SampleTable,
    records: Iterable[Record],
    *,
    ascii_only: bool = False,
) -> int:
    if fmt == "jsonl":
        return _write_jsonl(out, records, ascii_only)
    return _write_csv(out, table, records)


def _write_jsonl(out: TextSink, records: Iterable[Record], ascii_only: bool) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=ascii_only) + "\n")
        n += 1
    return n


def _write_csv(out: TextSink, table: SampleTable, records: Iterable[Record]) -> int:
    """RFC 4180 CSV with a header row; empty cells for missing values."""
    writer = csv.writer(out)
    writer.writerow(table.names)
    n = 0
    for record in records:
        writer.writerow([_csv_cell(record[c.name], c.kind) for c in table.columns])
        n += 1
    return n


def _csv_cell(value: Any, kind: ColumnKind) -> str:
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "json":
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UserInputError("Parquet export needs pyarrow", PARQUET_INSTALL) from None


def _write_parquet(path: Path, table: SampleTable, records: Iterable[Record]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    schema = pa.schema([(c.name, types.get(c.kind, pa.string())) for c in table.columns])
    json_columns = [c.name for c in table.columns if c.kind == "json"]
    n = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        rows = iter(records)
        while batch := list(islice(rows, _PARQUET_BATCH)):
            for record in batch:
                for name in json_columns:
                    value = record[name]
                    record[name] = None if value is None else json.dumps(value, ensure_ascii=False)
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
            n += len(batch)
    return n


# --------------------------------------------------------------------------- other readers


def json_with_samples(report_json: str, records: Iterable[Record]) -> Iterator[str]:
    """A run report's JSON object with ``"samples": [...]`` added as its last key, in pieces,
    so the samples are never held together."""
    head = report_json.rstrip()
    if not head.endswith("}"):
        raise ValueError("a run report is a JSON object")
    yield head[:-1].rstrip() + ',\n  "samples": ['
    first = True
    for record in records:
        yield ("\n    " if first else ",\n    ") + json.dumps(record)
        first = False
    yield "]\n}\n" if first else "\n  ]\n}\n"


def to_dataframe(run_id: str, store: str | Path | None = None) -> pd.DataFrame:
    """The run's records as a pandas DataFrame, one row per (sample, variant, repeat)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            f"RunReport.to_pandas() needs pandas, an optional extra: {PANDAS_INSTALL}"
        ) from None
    run_store = RunStore.open(store, create=False)
    try:
        table = sample_table(run_store, run_id)
        frame = pd.DataFrame.from_records(
            list(sample_records(run_store, table)), columns=table.names
        )
    finally:
        run_store.close()
    dtypes = {"int": "Int64", "float": "float64", "bool": "boolean"}
    return frame.astype({c.name: dtypes[c.kind] for c in table.columns if c.kind in dtypes})
