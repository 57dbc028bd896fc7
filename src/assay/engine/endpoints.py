"""The endpoints behind each model: which one gets the next call, which are taken out.

A model may list several base URLs (replicas of one deployment). Each call goes to the
usable endpoint with the fewest calls outstanding (ties: the one sent the fewest). An
endpoint that fails to connect is taken out for a cool-down, doubled each time it fails
again; when the cool-down ends it gets one call at a time until one succeeds. With
``--concurrency auto`` each endpoint has its own adaptive limit (``engine.limiter``), and a
call waits here until some endpoint has room.

State is per base URL, shared by every model that lists it; only the engine's event loop
touches it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from assay.engine.limiter import AdaptiveLimit, AimdSettings
from assay.errors import ProviderError
from assay.records import EndpointUse, ModelConfig

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]

UNLIMITED = 1 << 30  # the room of an endpoint under a fixed concurrency (its semaphores limit)
MAX_COOLDOWN_S = 60.0


class Endpoint:
    def __init__(self, url: str, limit: AdaptiveLimit | None, cooldown_s: float) -> None:
        self.url = url
        self.limit = limit
        self.cooldown_s = cooldown_s  # the first; doubled at each failure in a row
        self.in_flight = 0
        self.requests = self.errors = self.overloaded = self.taken_out = 0
        self.out_until = float("-inf")
        self.strikes = 0  # connection failures since its last success
        self.pools: list[EndpointPool] = []

    def usable(self, now: float) -> bool:
        """Not cooling down; after a cool-down, one call at a time until one succeeds."""
        return now >= self.out_until and not (self.strikes and self.in_flight)

    def free(self) -> int:
        return self.limit.free() if self.limit is not None else UNLIMITED

    def pause_left(self, now: float) -> float:
        return self.limit.pause_left(now) if self.limit is not None else 0.0

    def take(self) -> int:
        self.in_flight += 1
        self.requests += 1
        return self.limit.take() if self.limit is not None else 0

    def succeeded(self, latency_s: float) -> None:
        self.in_flight -= 1
        self.strikes = 0
        if self.limit is not None:
            self.limit.succeeded(latency_s)
        self._notify()

    def failed(self, epoch: int, error: ProviderError, now: float, pause_s: float) -> None:
        self.in_flight -= 1
        self.errors += 1
        self.overloaded += error.overloaded
        if error.connection_failed and now >= self.out_until:
            self._take_out(now)
        if self.limit is not None and error.overloaded:
            self.limit.overloaded(epoch, pause_s, now)
        elif self.limit is not None:
            self.limit.released()
        self._notify()

    def cancelled(self) -> None:
        self.in_flight -= 1
        if self.limit is not None:
            self.limit.released()
        self._notify()

    def give_back(self) -> None:
        """Undo ``take`` for a call that was never sent."""
        self.requests -= 1
        self.cancelled()

    def use(self) -> EndpointUse:
        return EndpointUse(
            base_url=self.url,
            requests=self.requests,
            errors=self.errors,
            overloaded=self.overloaded,
            taken_out=self.taken_out,
            limit=self.limit.use() if self.limit is not None else None,
        )

    def _take_out(self, now: float) -> None:
        self.strikes += 1
        self.taken_out += 1
        cooldown = self.cooldown_s * 2.0 ** (self.strikes - 1)
        self.out_until = now + min(MAX_COOLDOWN_S, cooldown)

    def _notify(self) -> None:
        for pool in self.pools:
            pool.wake()


class EndpointPool:
    """The endpoints of one list of base URLs, and the calls waiting for room on them, served
    first come, first served (a retried call queues behind the calls already waiting)."""

    def __init__(self, endpoints: list[Endpoint], *, clock: Clock, sleep: Sleep) -> None:
        self.endpoints = endpoints
        self._clock = clock
        self._sleep = sleep
        self._queue: deque[asyncio.Future[tuple[Endpoint, int]]] = deque()
        self._timer: asyncio.Task[None] | None = None  # wakes the queue when a pause ends
        # One endpoint under a fixed concurrency: nothing to choose and nothing to wait for.
        self._only = endpoints[0] if len(endpoints) == 1 and endpoints[0].limit is None else None
        for endpoint in endpoints:
            endpoint.pools.append(self)

    async def acquire(self) -> tuple[Endpoint, int]:
        """The endpoint for the next call, counted in flight, and the round it is sent in."""
        if self._only is not None:
            return self._only, self._only.take()
        if not self._queue:
            chosen = self._choose(self._clock())
            if chosen is not None:
                return chosen, chosen.take()
        turn: asyncio.Future[tuple[Endpoint, int]] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        self.wake()  # the obstacle may be a pause: that starts its timer
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                turn.result()[0].give_back()  # handed an endpoint it will not use
            raise

    def has_usable(self, now: float) -> bool:
        """Whether a failed call can go to an endpoint that is not cooling down."""
        return any(e.usable(now) for e in self.endpoints)

    def wake(self) -> None:
        """Hand the room there is to the calls waiting, in the order they came."""
        now = self._clock()
        while self._queue:
            if self._queue[0].done():  # cancelled while it waited
                self._queue.popleft()
                continue
            chosen = self._choose(now)
            if chosen is None:
                self._wake_when_paused(now)
                return
            self._queue.popleft().set_result((chosen, chosen.take()))

    def _candidates(self, now: float) -> list[Endpoint]:
        usable = [e for e in self.endpoints if e.usable(now)]
        # All cooling down: the one back soonest (the retry policy spaces the calls).
        return usable or [min(self.endpoints, key=lambda e: e.out_until)]

    def _choose(self, now: float) -> Endpoint | None:
        ready = [e for e in self._candidates(now) if e.free() > 0 and e.pause_left(now) <= 0]
        if not ready:
            return None
        return min(ready, key=lambda e: (e.in_flight, e.requests))

    def _wake_when_paused(self, now: float) -> None:
        """Room held only by a Retry-After opens when it passes, with no call ending then."""
        paused = [e.pause_left(now) for e in self._candidates(now) if e.free() > 0]
        pause = min(paused, default=0.0)
        if pause > 0 and self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._after(pause))

    async def _after(self, pause: float) -> None:
        await self._sleep(pause)
        self._timer = None
        self.wake()


class Endpoints:
    """Every endpoint the engine calls, by base URL, and one pool per list of base URLs."""

    def __init__(
        self, *, aimd: AimdSettings | None, clock: Clock, sleep: Sleep, cooldown_s: float
    ) -> None:
        self._aimd = aimd  # None: a fixed concurrency, no adaptive limit
        self._clock = clock
        self._sleep = sleep
        self._cooldown_s = cooldown_s
        self._by_url: dict[str, Endpoint] = {}
        self._pools: dict[str | tuple[str, ...], EndpointPool] = {}

    def pool(self, model: ModelConfig) -> EndpointPool | None:
        """The pool of the model's endpoints; None for a model run in-process."""
        key = model.base_url  # looked up on every call: the field itself, not a new tuple
        if key is None:
            return None
        pool = self._pools.get(key)
        if pool is None:
            endpoints = [self._endpoint(url) for url in model.base_urls]
            pool = self._pools[key] = EndpointPool(endpoints, clock=self._clock, sleep=self._sleep)
        return pool

    def use(self) -> list[EndpointUse]:
        return [endpoint.use() for endpoint in self._by_url.values()]

    def limits_now(self) -> int | None:
        """The adaptive limits of the endpoints called so far, added up; None under a fixed
        concurrency, or before the first call."""
        limits = [e.limit.current for e in self._by_url.values() if e.limit is not None]
        return sum(limits) if limits else None

    def _endpoint(self, url: str) -> Endpoint:
        if url not in self._by_url:
            limit = AdaptiveLimit(self._aimd) if self._aimd is not None else None
            self._by_url[url] = Endpoint(url, limit, self._cooldown_s)
        return self._by_url[url]
