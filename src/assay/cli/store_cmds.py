"""``assay runs``, ``assay show`` and ``assay compare``: read the run store, never write it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from assay.cli import options as o

if TYPE_CHECKING:
    from assay.analysis.results import RunReport
    from assay.store.runstore import RunRecord, RunStore

SHOW_HELP = """Summarise a run (the same table as when it ran); --samples adds every response.

  assay show 20261128-101500-a1b2c3 --samples --failures
"""

COMPARE_HELP = """Compare two runs on the same dataset, sample by sample (e.g. before/after a
prompt change), with a paired bootstrap CI and a paired significance test.

  assay compare RUN_A RUN_B
  assay compare RUN_A RUN_B --variant-a local/smollm2 --variant-b local/smollm2

An optimize run is compared through its final prompt (or --variant-a/-b baseline, its
starting prompt) on its held-out test rows.
"""


def register(app: typer.Typer) -> None:
    app.command("runs", help="List runs in the store, newest first.")(runs_command)
    app.command("show", help=SHOW_HELP)(show_command)
    app.command("compare", help=COMPARE_HELP)(compare_command)


def runs_command(
    store: Path | None = o.STORE,
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs to list."),
    json_out: bool = o.JSON_OUT,
) -> None:
    from rich.table import Table

    from assay.cli.console import cli_console
    from assay.store.runstore import RunStore

    runs = RunStore.open(store, create=False).list_runs(limit) if RunStore.exists(store) else []
    rows = [_run_row(r) for r in runs]
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        cli_console().print("No runs yet. Start one with: assay run --demo")
        return
    table = Table(title="Runs", title_justify="left")
    for col in ("id", "kind", "status", "created", "models", "data"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("id", "kind", "status", "created", "models", "data")))
    cli_console().print(table)


def _run_row(run: RunRecord) -> dict[str, object]:
    import time

    data = run.config.data
    models = set(run.config.models)
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at)),
        "models": ", ".join(sorted(models)),
        "data": data,
    }


def show_command(
    run_id: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    store: Path | None = o.STORE,
    samples: bool = typer.Option(
        False, "--samples", help='List every response and score (--json: under "samples").'
    ),
    failures: bool = typer.Option(False, "--failures", help="With --samples: only low scores."),
    json_out: bool = o.JSON_OUT,
) -> None:
    from assay.analysis.run_analysis import analyse
    from assay.cli import render
    from assay.store.runstore import RunStore

    run_store = RunStore.open(store, create=False)
    run = run_store.get_run(run_id)
    if run.kind == "optimize":
        from assay.cli.optimize_render import show_optimize

        show_optimize(run_store, run.id, as_json=json_out)
        return
    report = analyse(run_store, run.id)
    if samples and json_out:
        _print_json_with_samples(run_store, report, failures)
        return
    render.run_report(report, as_json=json_out)
    if samples and not json_out:
        render.samples_table(run_store.results(run.id), report.primary_metric, failures)


def _print_json_with_samples(run_store: RunStore, report: RunReport, failures: bool) -> None:
    """The run report with its per-sample records (those of ``assay export --format jsonl``)
    under ``"samples"``, streamed."""
    import sys

    from assay.analysis.export import json_with_samples, sample_records, sample_table

    table = sample_table(run_store, report.run_id)
    records = sample_records(run_store, table, failures=failures)
    for piece in json_with_samples(report.to_json(), records):
        sys.stdout.write(piece)


def compare_command(
    run_a: str = typer.Argument(..., help="Baseline run id."),
    run_b: str = typer.Argument(..., help="Run to compare with it."),
    variant_a: str | None = typer.Option(None, "--variant-a", help="Variant of run A."),
    variant_b: str | None = typer.Option(None, "--variant-b", help="Variant of run B."),
    store: Path | None = o.STORE,
    json_out: bool = o.JSON_OUT,
) -> None:
    from assay.analysis.runs_compare import compare_runs
    from assay.store.runstore import RunStore

    result = compare_runs(RunStore.open(store, create=False), run_a, run_b, variant_a, variant_b)
    if json_out:
        print(result.model_dump_json(indent=2))
        return
    from rich.console import Console

    Console().print(result.sentence())
