"""``assay init``: a commented ``assay.yaml`` from a dataset and a prompt.

The metric is guessed from the data: references that look like labels (a few short values,
each used more than once) give ``label``; otherwise no metric is written, and a judge block
is left commented out for the user to fill in.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

from assay.data.datasets import Dataset, FieldMapping

MAX_LABELS = 20
MAX_LABEL_CHARS = 40
_PLAIN = re.compile(r"[\w./][\w./@+-]*")  # candidates for a plain YAML scalar


def label_set(dataset: Dataset) -> list[str] | None:
    """The dataset's labels when its references look like labels, else None."""
    if not dataset.has_reference:
        return None
    seen: dict[str, int] = {}
    for sample in dataset.iter_samples():
        ref = (sample.reference or "").strip()
        if not ref or len(ref) > MAX_LABEL_CHARS or "\n" in ref:
            return None
        seen[ref] = seen.get(ref, 0) + 1
        if len(seen) > MAX_LABELS:
            return None
    if not seen or len(seen) > max(1, dataset.n_rows // 2):
        return None
    return sorted(seen)


def scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain where YAML reads it back as the same string (not a
    number, a boolean or null), else quoted."""
    if _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def relative(path: Path, folder: Path) -> str:
    """``path`` as written in a file in ``folder`` (paths in an eval file are read from it)."""
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # another drive (Windows): keep it absolute
        return str(path.resolve())


def init_text(data: Path, prompt: Path, out: Path, dataset: Dataset, mapping: FieldMapping) -> str:
    """The commented eval file, its paths relative to ``out``'s folder."""
    folder = out.parent
    labels = label_set(dataset)
    lines = [
        "# The eval: `assay run` reads ./assay.yaml (or --eval FILE). A flag given on the",
        "# command line replaces the key it names here. Paths are relative to this file.",
        "# Schema for editors: schemas/assay.schema.json in the Assay repository.",
        "",
        f"# {_data_note(dataset)}",
        _data_line(relative(data, folder), mapping),
        "# data: {path: FILE, input_field: review.text, output_field: label}",
        "",
        "prompts:  # several are compared on the same models",
        f"  - {scalar(relative(prompt, folder))}",
        '  # - {name: terse, text: "Answer with one word: positive or negative."}',
        "",
        "models:  # the entries of a models config: spec, label, base_url, api_key_env, price",
        "  - spec: local/smollm2",
        "    label: smollm2",
        "  # - {spec: openai/gpt-4o-mini, label: mini}",
        "",
        *_scoring(labels),
        "",
        "generation: {max_tokens: 256, temperature: 0.0}",
        "repeats: 1",
        "seed: 0",
        "# limit: 100             # the first N rows only",
        "# concurrency: 16  # or auto: find what each endpoint takes (auto:N caps it)",
        "# budget: {max_cost: 2.0, max_calls: 5000}",
        "# margin: 0.05           # the loss you accept: verdicts against the baseline",
        "# baseline: smollm2      # compare every variant with this label (default: the best)",
        "# sweeps: {temperature: [0.0, 0.7], max_tokens: [64, 256]}  # a variant per combination",
        "# gate: {fail_under: 0.8, fail_if_worse_than: results.json}  # exit code 3 on failure",
        "",
    ]
    return "\n".join(lines)


def _data_line(path: str, mapping: FieldMapping) -> str:
    """``data: FILE``, or with the fields the flags named (the run must read them the same)."""
    fields = {"input_field": mapping.input_field, "output_field": mapping.output_field}
    named = [f"{k}: {scalar(v)}" for k, v in fields.items() if v]
    if not named:
        return f"data: {scalar(path)}"
    return f"data: {{{', '.join([f'path: {scalar(path)}', *named])}}}"


def _data_note(dataset: Dataset) -> str:
    fields = f"fields {_listed(dataset.fields)}; " if dataset.fields else ""
    refs = dataset.n_with_reference
    return f"{dataset.n_rows} rows ({dataset.format}); {fields}{refs} with a reference"


def _scoring(labels: list[str] | None) -> list[str]:
    judge = [
        "# judge:",
        "#   model: openai/gpt-4o-mini      # or a list: a panel",
        "#   rubric: rubric.md              # or rubric_text: |",
        "#   max_tokens: 512",
    ]
    if labels is not None:
        return [f"metrics: [label]  # the references are labels: {_listed(labels)}", *judge]
    return [
        "# No metric yet: the references are not labels. Uncomment a metric or the judge.",
        "# metrics: [exact]  # or contains, rouge, number, json, regex:PATTERN, …",
        *judge,
    ]


def _listed(names: list[str]) -> str:
    """Names from the data, safe in a YAML comment (no line break or control code)."""
    return ", ".join(n if _PLAIN.fullmatch(n) else json.dumps(n) for n in names)
