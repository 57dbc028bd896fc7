"""``assay inspect`` and ``assay prices``: look before you spend (no model calls)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from assay.cli import options as o

INSPECT_HELP = """Show what Assay reads from a dataset, and the request a prompt makes. No calls.

  assay inspect reviews.jsonl
  assay inspect reviews.jsonl prompt.md --input-field review.text --output-field label
"""

PRICES_HELP = """Show the price table that applies (bundled list prices, plus --prices overrides).

  assay prices gpt-4o
  assay prices --prices my_prices.yaml --json
"""


def register(app: typer.Typer) -> None:
    app.command("inspect", help=INSPECT_HELP)(inspect_command)
    app.command("prices", help=PRICES_HELP)(prices_command)


def inspect_command(
    data: Path = typer.Argument(..., help="Dataset file."),
    prompt: Path | None = typer.Argument(None, help="Prompt file to render an example with."),
    input_field: str | None = o.INPUT_FIELD,
    output_field: str | None = o.OUTPUT_FIELD,
    json_out: bool = o.JSON_OUT,
) -> None:
    from assay.cli.render import warn
    from assay.data.datasets import FieldMapping, load_dataset
    from assay.data.prompts import load_prompt

    dataset = load_dataset(data, FieldMapping(input_field=input_field, output_field=output_field))
    template = load_prompt(prompt) if prompt else None
    if template:
        template.check_slots(dataset)
    for line in [*dataset.warnings, *(template.warnings if template else [])]:
        warn(line)  # on stderr, so --json output stays one JSON document
    first = next(dataset.iter_samples(limit=1))
    messages = template.render(first) if template else first.messages
    info = {
        "path": str(data),
        "format": dataset.format,
        "rows": len(dataset),
        "fields": dataset.fields,
        "with_reference": dataset.n_with_reference,
        "label_free": dataset.n_with_reference == 0,
        "prompt_slots": template.slots if template else [],
        "example_request": [m.model_dump() for m in messages],
        "example_reference": first.reference,
    }
    if json_out:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return
    _print_inspect(info)


def _print_inspect(info: dict[str, object]) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    from assay.cli.untrusted import visible

    # Everything shown here comes from the user's files: never markup, never control codes.
    console = Console()
    for key in ("path", "format", "rows", "fields", "with_reference", "label_free", "prompt_slots"):
        console.print(Text.assemble((key, "bold"), f": {visible(str(info[key]))}"))
    for message in messages_of(info):
        content = Text(visible(str(message["content"])))
        console.print(Panel(content, title=Text(str(message["role"])), title_align="left"))
    reference = visible(repr(info["example_reference"]))
    console.print(Text.assemble(("reference", "bold"), f": {reference}"))


def messages_of(info: dict[str, object]) -> list[dict[str, str]]:
    request = info["example_request"]
    return request if isinstance(request, list) else []


def prices_command(
    pattern: str | None = typer.Argument(None, help="Show models whose spec contains this."),
    prices: Path | None = o.PRICES,
    json_out: bool = o.JSON_OUT,
) -> None:
    from rich.console import Console

    from assay.cli.prices import prices_json, prices_table
    from assay.pricing import load_price_table

    table = load_price_table(prices)
    if json_out:
        print(json.dumps(prices_json(table, pattern), indent=2))
        return
    Console().print(prices_table(table, pattern))
