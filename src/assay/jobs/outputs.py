"""Output files: checked before any spending, written atomically, never over an input."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from assay.analysis.ci_report import junit_xml, summary_markdown
from assay.analysis.gate import GateResult
from assay.analysis.results import RunReport
from assay.errors import UserInputError
from assay.files import refuse_clobber, resolved, write_atomic

__all__ = ["Outputs", "absolute", "check_outputs", "write_atomic", "write_ci_outputs"]


class Outputs(BaseModel):
    """Where a job writes: ``results`` (the JSON report), for optimize ``prompt``, and for a
    CI ``junit`` (JUnit XML) and ``summary`` (Markdown) of a run and its gate."""

    model_config = ConfigDict(frozen=True)

    results: Path | None = None
    prompt: Path | None = None
    junit: Path | None = None
    summary: Path | None = None

    def paths(self) -> list[Path]:
        chosen = (self.results, self.prompt, self.junit, self.summary)
        return [p for p in chosen if p is not None]


def check_outputs(outputs: Outputs, inputs: Iterable[str | Path]) -> None:
    """Fail before spending anything when an output cannot be written, or would clobber an
    input (the data, a prompt), another output or anything in an input folder (the run
    store's: pass its folder, not ``runs.sqlite``, so the cache and WAL are covered too)."""
    seen: set[Path] = set()
    inputs = list(inputs)
    for path in outputs.paths():
        _check_writable(path)
        refuse_clobber(path, inputs)
        where = resolved(path)
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


def write_ci_outputs(outputs: Outputs, report: RunReport, gate: GateResult) -> None:
    """The JUnit XML and the Markdown summary of a run and its gate, each written atomically
    (their paths were checked before the run spent anything)."""
    if outputs.junit is not None:
        write_atomic(outputs.junit, junit_xml(report, gate))
    if outputs.summary is not None:
        write_atomic(outputs.summary, summary_markdown(report, gate))
