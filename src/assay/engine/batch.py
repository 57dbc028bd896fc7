"""Model calls through provider batch jobs, under the engine's cache, budget and accounting.

A request answered from the cache is not sent. Every request put in a batch reserves its worst
case at the batch price, as a live call does, and settles at its reported usage once the batch
has ended; a request the batch did not answer (an error line, an expired or cancelled request)
settles at $0, since providers do not bill them, and is left to the caller to retry live.
Answers go into the cache. Polling backs off from ``poll_s`` to ``poll_max_s``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from assay.engine.accounting import input_token_bound, output_token_bound, usage_or_estimate
from assay.engine.cache import cache_key
from assay.engine.engine import Engine
from assay.errors import BudgetExceeded, ProviderError, RequestTimeoutError
from assay.pricing import batch_price, cost_usd
from assay.providers.batch import (
    BatchClient,
    BatchEntry,
    BatchStatus,
    SubmittedBatch,
    make_batch_client,
)
from assay.records import Completion, ModelConfig, Request

_T = TypeVar("_T")
PURPOSE = "task"
BatchClientFactory = Callable[[ModelConfig], BatchClient]


class BatchSettings(BaseModel):
    """How batch models are batched: requests per batch job, and how often a job is checked."""

    model_config = ConfigDict(frozen=True)

    max_requests: int = Field(default=10_000, ge=1, le=50_000)  # OpenAI takes 50,000 at most
    poll_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    poll_max_s: float = Field(default=600.0, gt=0, le=3600, allow_inf_nan=False)


class ModelBatches:
    """One model's batch jobs: cache, reservations, submit, poll, collect."""

    def __init__(
        self,
        engine: Engine,
        model: ModelConfig,
        settings: BatchSettings,
        client_factory: BatchClientFactory | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.settings = settings
        self.price = batch_price(engine.prices.lookup(model))
        self._factory = client_factory or self._default_client
        self._client: BatchClient | None = None
        self._rng = random.Random(0)

    def _default_client(self, model: ModelConfig) -> BatchClient:
        return make_batch_client(model, timeout_s=self.engine.config.timeout_s)

    @property
    def client(self) -> BatchClient:
        if self._client is None:
            self._client = self._factory(self.model)
        return self._client

    def cached(self, request: Request) -> Completion | None:
        """The cached answer to ``request`` (priced at the batch price), or None."""
        cache = self.engine.cache
        hit = cache.get(cache_key(self.model, request)) if cache else None
        if hit is None:
            return None
        hit = hit.model_copy(
            update={"cost_usd": cost_usd(self.price, hit.input_tokens, hit.output_tokens)}
        )
        self.engine.accounting.record(PURPOSE, self.model.label, hit)
        return hit

    def estimate(self, request: Request) -> float:
        """The most a request can cost in a batch; under a cost budget it needs a price."""
        if self.price is None and self.engine.config.budget.max_cost_usd is not None:
            raise BudgetExceeded(
                f"Cost budget cannot cover a call to {self.model.spec}: its price is unknown; "
                "give it one with --prices FILE"
            )
        tokens = (input_token_bound(request), output_token_bound(request))
        return cost_usd(self.price, *tokens) or 0.0

    def try_reserve(self, request: Request) -> float:
        """Reserve now or raise BudgetExceeded (without waiting for calls in flight)."""
        estimate = self.estimate(request)
        self.engine.ledger.reserve(estimate)
        return estimate

    async def reserve(self, request: Request) -> float:
        """Reserve, waiting for calls in flight to give room back if they may."""
        estimate = self.estimate(request)
        await self.engine.reserve(estimate)
        return estimate

    def hold(self, request: Request) -> float:
        """Reserve for a request already in a batch sent by an earlier session."""
        estimate = self.estimate(request)
        self.engine.ledger.hold(estimate)
        return estimate

    def release(self, estimate: float) -> None:
        """Give back a reservation whose request was never sent."""
        self.engine.settle(estimate, 0.0)

    async def submit(self, entries: Sequence[BatchEntry]) -> SubmittedBatch:
        # A timeout may hide a batch that was created: retrying it could pay twice.
        return await self._retrying(lambda: self.client.submit(entries), idempotent=False)

    async def wait(self, batch_id: str, on_status: Callable[[BatchStatus], None]) -> BatchStatus:
        """Poll until the batch has ended, backing off between checks."""
        delay = self.settings.poll_s
        while True:
            status = await self._retrying(lambda: self.client.status(batch_id))
            on_status(status)
            if status.ended:
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(self.settings.poll_max_s, self.settings.poll_s))

    async def collect(
        self,
        status: BatchStatus,
        pending: Mapping[str, tuple[Request, float]],
        turnaround_s: float,
    ) -> dict[str, Completion]:
        """Read an ended batch's results and settle every pending request: the answered ones
        (priced, cached, counted) come back by custom_id; the others settle at $0."""
        results = await self._retrying(lambda: self.client.results(status))
        answers: dict[str, Completion] = {}
        for custom_id, (request, estimate) in pending.items():
            outcome = results.get(custom_id)
            if isinstance(outcome, Completion):
                answers[custom_id] = self._settle_answer(request, estimate, outcome, turnaround_s)
            else:
                self.engine.settle(estimate, 0.0)
                self.engine.accounting.record_failure(PURPOSE, self.model.label)
        return answers

    def _settle_answer(
        self, request: Request, estimate: float, completion: Completion, turnaround_s: float
    ) -> Completion:
        if not completion.usage_known:
            completion = completion.model_copy(update={"usage_estimated": True})
        self.engine.settle(estimate, cost_usd(self.price, *usage_or_estimate(request, completion)))
        cost = cost_usd(self.price, completion.input_tokens, completion.output_tokens)
        answer = completion.model_copy(
            update={"cost_usd": cost, "latency_s": turnaround_s, "batch": True}
        )
        if self.engine.cache is not None:
            self.engine.cache.put(cache_key(self.model, request), answer)
        self.engine.accounting.record(PURPOSE, self.model.label, answer)
        return answer

    async def _retrying(self, call: Callable[[], Awaitable[_T]], *, idempotent: bool = True) -> _T:
        """The engine's retry policy around one batch API call."""
        policy, attempt = self.engine.config.retry, 0
        while True:
            attempt += 1
            try:
                return await call()
            except ProviderError as error:
                unsure = not idempotent and isinstance(error, RequestTimeoutError)
                if unsure or not policy.should_retry(error, attempt):
                    raise
                await asyncio.sleep(policy.delay_s(error, attempt, self._rng))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
