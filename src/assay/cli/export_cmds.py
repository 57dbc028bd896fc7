"""``assay export``: a run's per-sample results as CSV, JSONL or Parquet (reads the store only)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from assay.cli import options as o

if TYPE_CHECKING:
    from assay.analysis.export import ExportFormat

EXPORT_HELP = """Export a run's per-sample results as CSV, JSONL or Parquet.

One row per sample, variant and repeat: the input, the reference, the response, every metric
(value, status, reason, details), the judge's verdict and reasoning, the error, latency,
tokens, cost and the cached flag. Rows are streamed (flat memory at any size); sample ids are
in natural order.

  assay export RUN --format csv -o results.csv
  assay export RUN --format jsonl | jq .response
  assay export RUN -o results.parquet        (needs: pip install 'assay\\[parquet]')
"""

_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def register(app: typer.Typer) -> None:
    app.command("export", help=EXPORT_HELP)(export_command)


def export_command(
    run_id: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        "-f",
        help="csv, jsonl or parquet (default: from the -o suffix, else csv).",
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="File to write (default stdout; parquet needs a file)."
    ),
    failures: bool = typer.Option(
        False, "--failures", help="Only rows whose primary score is below 1 or missing."
    ),
    store: Path | None = o.STORE,
) -> None:
    from assay.analysis.export import export_to_file, export_to_stream
    from assay.store.runstore import RunStore

    chosen = _format(fmt, output)
    run_store = RunStore.open(store, create=False)
    run = run_store.get_run(run_id)
    if output is None:
        export_to_stream(run_store, run.id, chosen, _Visible(sys.stdout), failures=failures)
        return
    n = export_to_file(run_store, run.id, chosen, output, failures=failures)
    typer.echo(f"Wrote {n:,} rows of run {run.id} to {output} ({chosen}).")


def _format(fmt: str | None, output: Path | None) -> ExportFormat:
    from assay.analysis.export import FORMATS
    from assay.errors import UserInputError

    if fmt is None:
        fmt = _SUFFIXES.get(output.suffix.lower(), "csv") if output is not None else "csv"
    if fmt.lower() not in FORMATS:
        raise UserInputError(f"Unknown export format {fmt!r}", "use csv, jsonl or parquet")
    return cast("ExportFormat", fmt.lower())


class _Visible:
    """stdout with every control character of the data shown as an escape, never obeyed
    (CSV cells hold model output). JSONL is already ASCII, so passes unchanged."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from assay.cli.untrusted import visible

        self._stream.write(visible(text))
        return len(text)
