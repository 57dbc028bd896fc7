"""A token-bucket rate limit in front of any handler, as hosted APIs apply one.

``rate`` requests per second are let through, with bursts of up to ``burst``; a request over
the limit is answered 429 with a ``Retry-After`` of the seconds until a token is free (in
milliseconds' precision, as ``retry-after-ms`` gives it)::

    bucket = TokenBucket(echo(delay=0.1), rate=200, burst=20)
    with ScriptedServer(bucket) as srv:
        ...
    assert bucket.limited / (bucket.accepted + bucket.limited) < 0.05
    assert bucket.duplicates() == {}
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from assay.testing.scripted_server import Action, ChatRequest, Handler, error

__all__ = ["TokenBucket"]


class TokenBucket:
    """A handler: ``handler`` answers the requests the bucket lets through."""

    def __init__(
        self,
        handler: Handler,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.handler = handler
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self.accepted = 0
        """Requests let through to ``handler``."""
        self.limited = 0
        """Requests answered 429."""
        self.accepted_keys: Counter[str] = Counter()
        """How often each request body (``attempt_key``) was let through."""
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Action | Awaitable[Action]:
        wait = self._take()
        if wait > 0:
            seconds = max(0.001, math.ceil(wait * 1000) / 1000)
            return error(429, "Rate limit reached; slow down", retry_after=seconds)
        with self._lock:
            self.accepted_keys[request.attempt_key] += 1
        return self.handler(request)

    def duplicates(self) -> dict[str, int]:
        """Request bodies let through more than once (a retry of a call that had succeeded)."""
        with self._lock:
            return {key: n for key, n in self.accepted_keys.items() if n > 1}

    def _take(self) -> float:
        """Take a token: 0.0, or the seconds until one is free (and count a 429)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.accepted += 1
                return 0.0
            self.limited += 1
            return (1 - self._tokens) / self.rate
