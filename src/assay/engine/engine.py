"""The engine: the only place that schedules model calls.

Cache in front of providers; one global concurrency limit plus per-provider limits (or, with
``concurrency="auto"``, an adaptive limit per endpoint); calls spread over a model's endpoints;
one retry policy; one timeout policy; usage and cost accounting behind. Budgets are enforced
here by reserving a worst-case cost before each call (input bounded by its UTF-8 bytes, output
by max_tokens), so concurrent calls cannot overshoot; each call then settles at its reported
usage, or at a safe estimate where the reply reported none.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assay.engine.accounting import (
    Accounting,
    input_token_bound,
    output_token_bound,
    usage_or_estimate,
)
from assay.engine.cache import ResponseCache, cache_key
from assay.engine.endpoints import Endpoints
from assay.engine.limiter import (
    AUTO,
    DEFAULT_CEILING,
    AimdSettings,
    LimitNow,
    concurrency_fields,
)
from assay.engine.retry import RetryPolicy
from assay.errors import BudgetExceeded, ProviderError, RequestTimeoutError
from assay.pricing import PriceTable, cost_usd
from assay.providers import make_provider
from assay.providers.base import Provider, ProviderFactory
from assay.records import (
    Completion,
    EndpointUse,
    ModelConfig,
    Price,
    Request,
    Spent,
    canonical_json,
)

Sleep = Callable[[float], Awaitable[Any]]


class Budget(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_cost_usd: float | None = Field(default=None, ge=0)
    max_calls: int | None = Field(default=None, ge=0)


class EngineConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Calls in flight at once, or "auto": an adaptive limit per endpoint that starts at 4 and
    # finds what each endpoint takes, up to max_concurrency (engine.limiter).
    concurrency: Annotated[int, Field(ge=1)] | Literal["auto"] = 16
    max_concurrency: int = Field(default=DEFAULT_CEILING, ge=1)
    provider_concurrency: dict[str, int] = Field(default_factory=dict)
    # How long an endpoint that failed to connect gets no call (doubled while it keeps failing).
    endpoint_cooldown_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    timeout_s: float = Field(default=120.0, gt=0, allow_inf_nan=False)
    retry: RetryPolicy = RetryPolicy()
    use_cache: bool = True
    local_parallel: int = Field(default=4, ge=1)
    budget: Budget = Budget()

    @model_validator(mode="before")
    @classmethod
    def _written_as_the_flag(cls, data: Any) -> Any:
        """``concurrency="auto:64"`` (or ``"16"``), as ``--concurrency`` takes it."""
        if isinstance(data, dict) and isinstance(data.get("concurrency"), str):
            return {**data, **concurrency_fields(data["concurrency"])}
        return data

    @property
    def auto(self) -> bool:
        return self.concurrency == AUTO

    @property
    def max_in_flight(self) -> int:
        """Calls in flight at most: the fixed concurrency, or the ceiling of ``auto``."""
        return self.concurrency if isinstance(self.concurrency, int) else self.max_concurrency

    def aimd(self) -> AimdSettings | None:
        return AimdSettings(ceiling=self.max_concurrency) if self.auto else None


def _picodollars(usd: float) -> int:
    """A reservation in whole picodollars, rounded up: added and taken back as integers, the
    reservations in flight sum exactly, in whatever order calls start and settle (as floats,
    a residue of either sign was left, and a call priced to the budget's last cent started
    or not by chance)."""
    return math.ceil(usd * 1e12)


class _BudgetLedger:
    """Spent plus reserved must stay within the budget; reservations settle on completion."""

    def __init__(self, budget: Budget, before: Spent) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self.spent_usd = before.cost_usd
        self._reserved = 0  # picodollars
        self.in_flight = 0  # reservations not yet settled
        self.calls = before.calls

    @property
    def reserved_usd(self) -> float:
        return self._reserved / 1e12

    def snapshot(self) -> Spent:
        """Calls reserved so far (in flight included) and dollars settled."""
        with self._lock:
            return Spent(calls=self.calls, cost_usd=self.spent_usd)

    def reserve(self, estimate_usd: float) -> None:
        with self._lock:
            b = self.budget
            if b.max_calls is not None and self.calls + 1 > b.max_calls:
                raise BudgetExceeded(f"Call budget reached ({b.max_calls} calls)")
            total = self.spent_usd + self._reserved / 1e12 + estimate_usd
            if b.max_cost_usd is not None and total > b.max_cost_usd:
                raise BudgetExceeded(
                    f"Cost budget reached: ${self.spent_usd:.4f} spent, next call could cost "
                    f"${estimate_usd:.4f}, limit ${b.max_cost_usd:.4f}"
                )
            self.calls += 1
            self.in_flight += 1
            self._reserved += _picodollars(estimate_usd)

    def may_fit_later(self, estimate_usd: float) -> bool:
        """Whether a call refused now could fit once the calls in flight settle: they give
        back what they reserved beyond their cost, never calls already counted."""
        with self._lock:
            b = self.budget
            calls_left = b.max_calls is None or self.calls + 1 <= b.max_calls
            cost_left = b.max_cost_usd is None or self.spent_usd + estimate_usd <= b.max_cost_usd
            return self.in_flight > 0 and calls_left and cost_left

    def hold(self, estimate_usd: float) -> None:
        """Reserve for calls already sent and counted in an earlier session (a batch found
        again on resume): they will be paid whatever is left, so nothing is checked."""
        with self._lock:
            self.in_flight += 1
            self._reserved += _picodollars(estimate_usd)

    def settle(self, estimate_usd: float, actual_usd: float | None) -> None:
        with self._lock:
            self.in_flight -= 1
            self._reserved -= _picodollars(estimate_usd)
            self.spent_usd += actual_usd if actual_usd is not None else 0.0


class Engine:
    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        prices: PriceTable | None = None,
        cache: ResponseCache | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        spent_before: Spent | None = None,
        provider_factory: ProviderFactory = make_provider,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``spent_before``: what earlier sessions of the same run used, charged to the budget.

        ``provider_factory`` builds each provider the engine calls (once per distinct model
        setup); pass one to put the engine in front of fakes or instrumented providers.
        """
        self.config = config or EngineConfig()
        self.prices = prices or PriceTable.bundled()
        self.cache = cache if self.config.use_cache else None
        self.accounting = Accounting()
        self.ledger = _BudgetLedger(self.config.budget, spent_before or Spent())
        self._settled = asyncio.Event()  # set (and replaced) each time a call settles
        self._rng = rng or random.Random(0)
        self._sleep = sleep
        self._clock = clock
        self._global = asyncio.Semaphore(self.config.max_in_flight)
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._endpoints = Endpoints(
            aimd=self.config.aimd(),
            clock=clock,
            sleep=sleep,
            cooldown_s=self.config.endpoint_cooldown_s,
        )
        self._providers: dict[tuple[Any, ...], Provider] = {}
        self._provider_factory = provider_factory

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def complete(
        self, model: ModelConfig, request: Request, *, purpose: str = "task"
    ) -> Completion:
        """Return a completion (from cache or provider) or raise a typed ProviderError."""
        key = cache_key(model, request) if self.cache else ""  # hashes the whole request
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            completion = _priced(self.prices.lookup(model), cached)
        else:
            completion = await self._call_with_retries(model, request, purpose)
            if self.cache:
                self.cache.put(key, completion)
        self.accounting.record(purpose, model.label, completion)
        return completion

    async def _call_with_retries(
        self, model: ModelConfig, request: Request, purpose: str
    ) -> Completion:
        attempt = moved = 0
        while True:
            attempt += 1
            try:
                return await self._call_once(model, request)
            except ProviderError as error:
                self.accounting.record_failure(purpose, model.label)
                if self._goes_elsewhere(model, error, moved):
                    moved, attempt = moved + 1, attempt - 1
                    continue
                if not self.config.retry.should_retry(error, attempt):
                    raise
                await self._sleep(self.config.retry.delay_s(error, attempt, self._rng))

    async def _call_once(self, model: ModelConfig, request: Request) -> Completion:
        price = self._budget_price(model)
        estimate = _worst_case_cost(price, request)
        await self._reserve(estimate)
        actual: float | None = None
        try:
            completion = await self._send(model, request)
            actual = cost_usd(price, *usage_or_estimate(request, completion))
            return _priced(price, completion, estimated=not completion.usage_known)
        finally:
            self.ledger.settle(estimate, actual)
            self._settled.set()  # wake the calls waiting for room in the budget
            self._settled = asyncio.Event()

    async def _send(self, model: ModelConfig, request: Request) -> Completion:
        pool = self._endpoints.pool(model)
        if pool is None:  # an in-process model
            async with self._global, self._limit_for(model):
                return await self._timed(self._provider(model), request)
        endpoint, epoch = await pool.acquire()
        try:
            async with self._global, self._limit_for(model):
                completion = await self._timed(self._provider(model, endpoint.url), request)
        except ProviderError as error:
            pause = self.config.retry.overload_pause_s(error)
            endpoint.failed(epoch, error, self._clock(), pause)
            raise
        except BaseException:
            endpoint.cancelled()
            raise
        endpoint.succeeded(completion.latency_s)
        return completion

    def _goes_elsewhere(self, model: ModelConfig, error: ProviderError, moved: int) -> bool:
        """A call that could not reach its endpoint goes at once to another of the model's
        endpoints, not counted as a retry; each endpoint but one at most once per call."""
        pool = self._endpoints.pool(model) if error.connection_failed else None
        if pool is None or moved >= len(pool.endpoints) - 1:
            return False
        return pool.has_usable(self._clock())

    def endpoint_use(self) -> list[EndpointUse]:
        """Calls, errors and cool-downs per endpoint so far (and each adaptive limit)."""
        return self._endpoints.use()

    def limit_now(self) -> LimitNow | None:
        """Under ``concurrency="auto"``, where its limits stand now (for a progress display);
        None under a fixed concurrency or before the first call to an endpoint."""
        total = self._endpoints.limits_now()
        if total is None:
            return None
        ceiling = self.config.max_in_flight
        return LimitNow(min(total, ceiling), ceiling)

    async def _reserve(self, estimate: float) -> None:
        """Reserve the worst case; while calls in flight may give room back, wait for them
        rather than stop a run that still fits its budget."""
        while True:
            settled = self._settled
            try:
                self.ledger.reserve(estimate)
                return
            except BudgetExceeded:
                if not self.ledger.may_fit_later(estimate):
                    raise
            await settled.wait()

    async def reserve(self, estimate_usd: float) -> None:
        """Reserve a call the engine does not send itself (a request in a batch job), waiting
        for room as a call does; settle it with ``settle``."""
        await self._reserve(estimate_usd)

    def settle(self, estimate_usd: float, actual_usd: float | None) -> None:
        """Settle a reservation at what the call cost, and wake the calls waiting for room."""
        self.ledger.settle(estimate_usd, actual_usd)
        self._settled.set()
        self._settled = asyncio.Event()

    def _budget_price(self, model: ModelConfig) -> Price | None:
        """The model's price; under a cost budget an unknown price stops the call, since no
        reservation could cover it (jobs refuse such a run before it starts)."""
        price = self.prices.lookup(model)
        if price is None and self.config.budget.max_cost_usd is not None:
            raise BudgetExceeded(
                f"Cost budget cannot cover a call to {model.spec}: its price is unknown; "
                "give it one with --prices FILE"
            )
        return price

    async def _timed(self, provider: Provider, request: Request) -> Completion:
        # asyncio.timeout, not wait_for: wait_for runs each call in a new task, which delays
        # releasing pooled connections and doubles the CPU per request at high concurrency.
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await provider.complete(request)
        except TimeoutError:
            raise RequestTimeoutError(f"No reply within {self.config.timeout_s:g} s") from None

    def _limit_for(self, model: ModelConfig) -> asyncio.Semaphore:
        if model.provider not in self._limits:
            default = self.config.local_parallel if model.is_local else self.config.max_in_flight
            limit = self.config.provider_concurrency.get(model.provider, default)
            self._limits[model.provider] = asyncio.Semaphore(limit)
        return self._limits[model.provider]

    def _provider(self, model: ModelConfig, url: str | None = None) -> Provider:
        """The provider for one of the model's endpoints (``url``; default: its first)."""
        url = url or model.endpoint
        key = (model.provider, model.model, url, model.api_key_env, canonical_json(model.params))
        if key not in self._providers:
            one = model if url == model.base_url else model.model_copy(update={"base_url": url})
            self._providers[key] = self._provider_factory(
                one,
                timeout_s=self.config.timeout_s,
                max_connections=self.config.max_in_flight,
                local_parallel=self.config.local_parallel,
            )
        return self._providers[key]

    def provider_for(self, model: ModelConfig) -> Provider:
        """The provider instance the engine uses (tests reach the local HTTP endpoint with it)."""
        return self._provider(model)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()


def _priced(price: Price | None, completion: Completion, *, estimated: bool = False) -> Completion:
    """The cost from the reply's own usage: unknown (None) where it gave none. ``estimated``:
    the budget was charged an estimate instead (a reply without usage)."""
    update: dict[str, Any] = {
        "cost_usd": cost_usd(price, completion.input_tokens, completion.output_tokens)
    }
    if estimated:
        update["usage_estimated"] = True
    return completion.model_copy(update=update)


def _worst_case_cost(price: Price | None, request: Request) -> float:
    """The most a call can cost: every input byte a token (safe for any script, CJK
    included), and the full ``max_tokens`` of output."""
    tokens = (input_token_bound(request), output_token_bound(request))
    return cost_usd(price, *tokens) or 0.0
