"""The one retry policy: bounded attempts, exponential backoff with jitter, Retry-After honoured."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from assay.errors import ProviderError


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=5, ge=1)
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=60.0, ge=0)
    jitter: float = Field(default=0.25, ge=0, le=1)
    max_retry_after_s: float = Field(default=300.0, ge=0)

    def should_retry(self, error: ProviderError, attempt: int) -> bool:
        """``attempt`` counts from 1. Auth, bad request and context errors never retry."""
        return error.retryable and attempt < self.max_attempts

    def delay_s(self, error: ProviderError, attempt: int, rng: random.Random) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            # The server said when; waiting less only earns another 429.
            return float(min(float(retry_after), self.max_retry_after_s))
        backoff = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        return backoff * (1 + self.jitter * (2 * rng.random() - 1))

    def overload_pause_s(self, error: ProviderError) -> float:
        """How long an endpoint that said slow down gets no new call under adaptive
        concurrency: its Retry-After (capped), or the first backoff step without one."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(min(float(retry_after), self.max_retry_after_s))
        return self.base_delay_s
