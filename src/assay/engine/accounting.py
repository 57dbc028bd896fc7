"""Token, call and cost counters per (purpose, model). Correct under concurrency."""

from __future__ import annotations

import threading
from collections import defaultdict

from pydantic import BaseModel

from assay.records import Completion


class UsageTotals(BaseModel):
    calls: int = 0  # requests that reached a provider and succeeded
    cached_calls: int = 0
    failed_calls: int = 0  # attempts that failed (including retried ones)
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0  # spent: only calls that reached a provider
    cost_saved_usd: float = 0.0  # what cache hits would have cost
    cost_unknown_calls: int = 0  # calls whose price or usage is unknown

    @property
    def cost_known(self) -> bool:
        return self.cost_unknown_calls == 0


class Accounting:
    """One lock around every update: counters are shared by tasks and provider threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], UsageTotals] = defaultdict(UsageTotals)

    def record(self, purpose: str, label: str, completion: Completion) -> None:
        with self._lock:
            totals = self._totals[(purpose, label)]
            if completion.cached:
                totals.cached_calls += 1
                totals.cost_saved_usd += completion.cost_usd or 0.0
                return
            totals.calls += 1
            totals.input_tokens += completion.input_tokens or 0
            totals.output_tokens += completion.output_tokens or 0
            totals.reasoning_tokens += completion.reasoning_tokens or 0
            if completion.cost_usd is None:
                totals.cost_unknown_calls += 1
            else:
                totals.cost_usd += completion.cost_usd

    def record_failure(self, purpose: str, label: str) -> None:
        with self._lock:
            self._totals[(purpose, label)].failed_calls += 1

    def snapshot(self) -> dict[tuple[str, str], UsageTotals]:
        with self._lock:
            return {k: v.model_copy() for k, v in self._totals.items()}

    def total_cost(self) -> float:
        with self._lock:
            return sum(t.cost_usd for t in self._totals.values())

    def total_calls(self) -> int:
        with self._lock:
            return sum(t.calls + t.failed_calls for t in self._totals.values())
