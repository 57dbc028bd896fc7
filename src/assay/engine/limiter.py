"""Adaptive concurrency (``--concurrency auto``): one AIMD limit of calls in flight per endpoint.

The limit starts small and grows by one per reply (doubling each round of calls, "slow
start") until the first sign of overload, then by one per round (additive increase), and
only while replies succeed, the limit is in use, and their latency stays flat (the median of
the last few replies against the best median seen). A reply that says slow down (429, 503,
529) cuts it by a factor (multiplicative decrease), once per round: replies to calls sent
before the cut do not cut again. Its Retry-After holds every new call to that endpoint until
it has passed. The ceiling caps the limit; one is its floor.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assay.records import AdaptiveLimitUse

AUTO = "auto"
DEFAULT_CEILING = 256


class AimdSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: int = Field(default=4, ge=1)
    ceiling: int = Field(default=DEFAULT_CEILING, ge=1)
    backoff: float = Field(default=0.8, gt=0, lt=1)  # the limit is multiplied by this on overload
    window: int = Field(default=16, ge=1)  # replies per latency median
    tolerance: float = Field(default=2.0, gt=1)  # a median above best x this is not flat


def concurrency_fields(value: int | str) -> dict[str, Any]:
    """``16`` -> ``{"concurrency": 16}``; ``auto`` -> ``{"concurrency": "auto"}``;
    ``auto:64`` -> ``{"concurrency": "auto", "max_concurrency": 64}``. A value that is none
    of these raises ValueError with a one-line reason."""
    text = str(value).strip().lower()
    head, sep, tail = text.partition(":")
    if head == AUTO:
        if not sep:
            return {"concurrency": AUTO}
        return {"concurrency": AUTO, "max_concurrency": _at_least_one(tail, value)}
    return {"concurrency": _at_least_one(text, value)}


def _at_least_one(text: str, given: int | str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(
            f"{given!r} is not a concurrency: give a number greater than or equal to 1, "
            "or auto (auto:N caps it at N)"
        )
    return number


@dataclass(frozen=True)
class LimitNow:
    """The adaptive limit of calls in flight at this moment (every endpoint's, added up, and
    at most the ceiling, which also caps the calls in flight overall)."""

    limit: int
    ceiling: int


class AdaptiveLimit:
    """One endpoint's limit. Only the engine's event loop calls it, so it needs no lock."""

    def __init__(self, settings: AimdSettings) -> None:
        self.settings = settings
        start = min(settings.start, settings.ceiling)
        self.limit = float(start)
        self.in_flight = 0
        self.epoch = 0  # rounds since the start: each cut begins a new one
        self.paused_until = 0.0
        self.lowest = self.highest = start
        self.increases = self.decreases = 0
        self._slow_start = True
        self._latencies: list[float] = []
        self._best = float("inf")
        self._flat = True

    @property
    def current(self) -> int:
        return int(self.limit)

    def free(self) -> int:
        return max(0, int(self.limit) - self.in_flight)

    def pause_left(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    def take(self) -> int:
        """Count a call in flight; returns the round it was sent in."""
        self.in_flight += 1
        return self.epoch

    def succeeded(self, latency_s: float) -> None:
        busy = self.in_flight  # with this call: was the whole limit in use?
        self.in_flight -= 1
        self._observe(latency_s)
        if busy >= int(self.limit) and self._flat:
            self._set(self.limit + (1.0 if self._slow_start else 1.0 / self.limit))

    def overloaded(self, epoch: int, pause_s: float, now: float) -> None:
        """A reply said slow down: no new call for ``pause_s``; cut the limit once a round."""
        self.in_flight -= 1
        self.paused_until = max(self.paused_until, now + pause_s)
        if epoch == self.epoch:
            self.epoch += 1
            self._slow_start = False
            self._set(self.limit * self.settings.backoff)

    def released(self) -> None:
        """Any other end of a call (an error that is not overload, a cancel): no signal."""
        self.in_flight -= 1

    def use(self) -> AdaptiveLimitUse:
        return AdaptiveLimitUse(
            final=self.current,
            lowest=self.lowest,
            highest=self.highest,
            increases=self.increases,
            decreases=self.decreases,
        )

    def _observe(self, latency_s: float) -> None:
        self._latencies.append(latency_s)
        if len(self._latencies) < self.settings.window:
            return
        median = statistics.median(self._latencies)
        self._latencies.clear()
        self._best = min(self._best, median)
        self._flat = median <= self._best * self.settings.tolerance
        if not self._flat:  # queueing at the server: past the point where more calls help
            self._slow_start = False

    def _set(self, value: float) -> None:
        before = int(self.limit)
        self.limit = min(float(self.settings.ceiling), max(1.0, value))
        after = int(self.limit)
        self.increases += after > before
        self.decreases += after < before
        self.lowest, self.highest = min(self.lowest, after), max(self.highest, after)
