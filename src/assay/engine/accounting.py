"""Token, call and cost counters per (purpose, model), correct under concurrency; and the
token bounds a hard budget reserves and charges by.

A BPE tokenizer (byte-level, or with byte fallback) never makes more tokens than the text has
UTF-8 bytes, whatever the script, so bytes bound the tokens of CJK text as safely as English.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from pydantic import BaseModel

from assay.records import Completion, Request

# Chat framing a provider adds around each message (role, separators) and each request.
MESSAGE_OVERHEAD_TOKENS = 8
REQUEST_OVERHEAD_TOKENS = 16
# The output bound of a request with no max_tokens (the CLI always sets one).
DEFAULT_MAX_OUTPUT_TOKENS = 4096


def input_token_bound(request: Request) -> int:
    """At least as many tokens as the provider can count for the request's messages."""
    text = sum(len(m.content.encode("utf-8")) for m in request.messages)
    return text + MESSAGE_OVERHEAD_TOKENS * len(request.messages) + REQUEST_OVERHEAD_TOKENS


def output_token_bound(request: Request) -> int:
    return request.params.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS


def usage_or_estimate(request: Request, completion: Completion) -> tuple[int, int]:
    """The reply's token usage; a part it left out is bounded from above, never taken as 0:
    input by the request's bytes, output by the reply's bytes (at most ``max_tokens``)."""
    input_tokens = completion.input_tokens
    if input_tokens is None:
        input_tokens = input_token_bound(request)
    output_tokens = completion.output_tokens
    if output_tokens is None:
        reply = len(completion.text.encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS
        output_tokens = min(reply, output_token_bound(request))
    return input_tokens, output_tokens


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
    usage_estimated_calls: int = 0  # replies without usage, charged to the budget an estimate

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
            totals.usage_estimated_calls += completion.usage_estimated
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
