"""``assay report`` (one self-contained HTML file) and ``assay ui`` (a local dashboard)."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli import options as o

REPORT_HELP = """Write one self-contained HTML report for one or more runs: the models table,
cost against quality with the Pareto front, latency per model, paired comparisons, the
recommendation and a per-sample explorer with filters and search. No network needed to
open it; all model text is escaped.

  assay report 20261128-101500-a1b2c3 -o report.html
  assay report RUN_A RUN_B -o before-after.html
"""

UI_HELP = """Serve a local dashboard over the run store: runs, run details, live progress of
running runs, and run-to-run comparison. Listens on 127.0.0.1 and is read-only unless you
pass --allow-writes (then pages carry a per-launch token for the one write: archiving a run).

  assay ui
  assay ui --port 9000 --store ./experiments/.assay
"""


def register(app: typer.Typer) -> None:
    app.command("report", help=REPORT_HELP)(report_command)
    app.command("ui", help=UI_HELP)(ui_command)


def report_command(
    run_ids: list[str] = typer.Argument(..., help="Run ids (a unique prefix is enough)."),
    output: Path = typer.Option(Path("assay-report.html"), "-o", "--output", help="HTML file."),
    store: Path | None = o.STORE,
) -> None:
    from assay.report import write_report
    from assay.store.runstore import RunStore

    path = write_report(RunStore.open(store, create=False), run_ids, output)
    typer.echo(f"Wrote {path} ({path.stat().st_size / 1024:,.0f} KiB); open it in a browser.")


def ui_command(
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    store: Path | None = o.STORE,
    allow_writes: bool = typer.Option(
        False, "--allow-writes", help="Allow archiving runs from the page (token-protected)."
    ),
) -> None:
    from assay.store.runstore import store_dir
    from assay.ui import is_loopback, make_server

    server = make_server(store_dir(store), host=host, port=port, allow_writes=allow_writes)
    mode = "archiving allowed" if allow_writes else "read-only"
    typer.echo(f"Assay dashboard at {server.url} ({mode}); Ctrl-C to stop.")
    if not is_loopback(host):
        typer.secho(
            f"warning: listening on {host}: anyone who can reach this address can read your runs",
            err=True,
            fg="yellow",
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("Stopped.")
    finally:
        server.server_close()
