"""Datasets, prompt templates and the demo files shipped with Assay."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from assay.data.datasets import Dataset, FieldMapping, load_dataset
from assay.data.prompts import PromptTemplate, load_prompt
from assay.errors import UserInputError

__all__ = [
    "Dataset",
    "FieldMapping",
    "PromptTemplate",
    "demo_names",
    "demo_path",
    "load_dataset",
    "load_prompt",
]


def demo_names() -> list[str]:
    """The demo files shipped in the package, sorted."""
    demo = files("assay.data") / "demo"
    return sorted(e.name for e in demo.iterdir() if e.is_file() and not e.name.startswith("."))


def demo_path(name: str) -> Path:
    """The path of a shipped demo file, e.g. ``demo_path("sentiment.jsonl")``."""
    if name not in demo_names():
        raise UserInputError(
            f"no demo file named '{name}'", f"demo files: {', '.join(demo_names())}"
        )
    # The package is installed as files on disk (not zipped), so the resource is a real path.
    return Path(str(files("assay.data") / "demo" / name))
