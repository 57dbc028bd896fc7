"""What a pipeline did on the pilot rows, for the pre-flight estimate: its model calls and their
input tokens per row. A pipeline's calls per row cannot be known before it runs, so both jobs
run it on a few rows first (their results are kept: nothing is paid twice)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from assay.store.runstore import ResultRecord

PILOT_ROWS = 3


@dataclass(frozen=True)
class PilotMeasure:
    rows: int  # pilot rows run (failed ones included)
    calls: int  # model calls they made
    input_tokens: int  # of those calls

    @property
    def measured(self) -> bool:
        return self.rows > 0 and self.calls > 0

    @property
    def calls_per_row(self) -> float:
        """Model calls a row (1 when none was measured)."""
        return self.calls / self.rows if self.measured else 1.0

    @property
    def input_tokens_per_call(self) -> float | None:
        return self.input_tokens / self.calls if self.measured else None

    def note(self) -> str:
        if not self.measured:
            return f"pipeline: no model call in a pilot on {self.rows} rows; 1 a row assumed"
        return f"pipeline: {self.calls_per_row:.1f} calls a row, from a pilot on {self.rows} rows"


def measure_pilot(results: Iterable[ResultRecord]) -> PilotMeasure:
    rows = calls = tokens = 0
    for result in results:
        rows += 1
        record = result.completion.pipeline if result.completion else None
        for call in record.calls if record else ():
            calls += 1
            tokens += call.input_tokens or 0
    return PilotMeasure(rows, calls, tokens)
