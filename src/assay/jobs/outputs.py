"""Output files: checked before any spending, written atomically, never over an input."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from assay.errors import UserInputError


class Outputs(BaseModel):
    """Where a job writes: ``results`` (the JSON report) and, for optimize, ``prompt``."""

    model_config = ConfigDict(frozen=True)

    results: Path | None = None
    prompt: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.results, self.prompt) if p is not None]


def check_outputs(outputs: Outputs, inputs: Iterable[str | Path]) -> None:
    """Fail before spending anything when an output cannot be written, or would clobber an
    input (the data, a prompt) or another output."""
    protected = {_resolved(p): str(p) for p in inputs}
    seen: set[Path] = set()
    for path in outputs.paths():
        _check_writable(path)
        where = _resolved(path)
        if where in protected:
            raise UserInputError(
                f"Cannot write {path}: it is the input {protected[where]}", "choose another path"
            )
        if where in seen:
            raise UserInputError(f"Two outputs go to {path}", "give each output its own path")
        seen.add(where)


def _check_writable(path: Path) -> None:
    if not path.parent.exists():
        raise UserInputError(f"Cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UserInputError(f"Cannot write {path}: it is a directory", "give a file path")


def absolute(path: str) -> str:
    """Inputs are recorded as absolute paths, so a resume from another folder finds them and
    the CLI and the API record the same run."""
    return str(Path(path).expanduser().resolve())


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
