"""``assay merge``: parse the run ids and stores -> the merge job -> render the merged run."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli import options as o

MERGE_HELP = """Join the shard runs of one run (assay run --shard i/n) into one run.

The shards must be runs of one config (same data, prompts, models, metrics, seed and n), each
complete, covering 1/n..n/n once. Their results are copied into a new run of --store, which
reports what one unsharded run reports. Shards made on other machines are read from their
stores with --from (copy each machine's .assay folder over first). See docs/scale.md.

  assay run data.jsonl prompt.md -m openai/gpt-4o-mini --metric exact --shard 2/3
  assay merge RUN_1 RUN_2 RUN_3 --from machine2/.assay --from machine3/.assay
"""


def register(app: typer.Typer) -> None:
    app.command("merge", help=MERGE_HELP, short_help="Join shard runs into one run.")(merge_command)


def merge_command(
    runs: list[str] = typer.Argument(..., help="The shard runs' ids (unique prefixes do)."),
    sources: list[Path] = typer.Option(
        [], "--from", metavar="STORE_DIR", help="Another run store holding shards, repeatable."
    ),
    store: Path | None = o.STORE,
    json_out: bool = o.JSON_OUT,
) -> None:
    from assay.cli import render
    from assay.jobs.merge import merge_shards

    render.run_report(merge_shards(store, runs, sources), as_json=json_out)
