"""``assay init``: write a commented eval file (``assay.yaml``) from a dataset and a prompt."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli import options as o

INIT_HELP = """Write a commented eval file from a dataset and a prompt. No calls.

The metric is guessed from the data (labels: --metric label; otherwise a judge to fill in).
`assay run` then reads ./assay.yaml; flags given to it override the file's keys.

  assay init reviews.jsonl prompt.md
  assay init qa.jsonl prompt.md -o evals/qa.yaml --input-field question --output-field answer
"""


def register(app: typer.Typer) -> None:
    app.command("init", help=INIT_HELP)(init_command)


def init_command(
    data: Path = typer.Argument(..., help="Dataset file."),
    prompt: Path = typer.Argument(..., help="Prompt file."),
    output: Path = typer.Option(Path("assay.yaml"), "-o", "--output", help="Eval file to write."),
    input_field: str | None = o.INPUT_FIELD,
    output_field: str | None = o.OUTPUT_FIELD,
) -> None:
    from assay.benchmark.eval_init import init_text
    from assay.data.datasets import FieldMapping, load_dataset
    from assay.data.prompts import load_prompt
    from assay.errors import UserInputError
    from assay.files import write_atomic

    if output.exists() or output.is_symlink():
        raise UserInputError(f"{output} exists", "keep it, or write elsewhere with -o FILE")
    if not output.parent.is_dir():
        raise UserInputError(f"Cannot write {output}: folder {output.parent} does not exist")
    mapping = FieldMapping(input_field=input_field, output_field=output_field)
    dataset = load_dataset(data, mapping)
    load_prompt(prompt).check_slots(dataset)
    write_atomic(output, init_text(data, prompt, output, dataset, mapping))
    typer.echo(f"Wrote {output}. Run it with: assay run" + _eval_flag(output))


def _eval_flag(output: Path) -> str:
    return "" if output.resolve() == Path("assay.yaml").resolve() else f" --eval {output}"
