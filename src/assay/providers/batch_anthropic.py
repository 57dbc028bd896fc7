"""Anthropic's Message Batches through the official ``anthropic`` SDK.

The requests go inline (``messages.batches.create`` with a ``custom_id`` each); the results are
a JSONL stream read once the batch has ended, one line per request: succeeded, errored,
canceled or expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assay.errors import (
    BadRequestError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
)
from assay.providers.anthropic_provider import (
    _completion,
    _import_anthropic,
    _sdk_base_url,
    messages_body,
)
from assay.providers.batch import BatchEntry, BatchResults, BatchStatus, SubmittedBatch
from assay.providers.openai_compat import _map_status, redact_key
from assay.providers.specs import api_key_for
from assay.records import ModelConfig

# Error types inside an errored result that a live call may well get past.
_TRANSIENT = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})


class AnthropicBatchClient:
    def __init__(self, model: ModelConfig, *, timeout_s: float) -> None:
        anthropic = _import_anthropic()
        self.model = model
        self._client: Any = anthropic.AsyncAnthropic(
            api_key=api_key_for(model) or "not-needed",
            base_url=_sdk_base_url(model.endpoint),
            max_retries=0,
            timeout=timeout_s,
        )

    async def submit(self, entries: Sequence[BatchEntry]) -> SubmittedBatch:
        requests = [{"custom_id": e.custom_id, "params": self._params(e)} for e in entries]
        batch = await self._call(self._client.messages.batches.create(requests=requests))
        return SubmittedBatch(batch_id=batch.id, input_file_id=None)

    def _params(self, entry: BatchEntry) -> dict[str, Any]:
        """The live call's body, its raw sampling fields inline (a batch takes plain params)."""
        body = messages_body(self.model, entry.request)
        extra = body.pop("extra_body", {})
        return {**body, **extra}

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await self._call(self._client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts
        finished = counts.succeeded + counts.errored + counts.canceled + counts.expired
        return BatchStatus(
            batch_id=batch.id,
            status=batch.processing_status,
            ended=batch.processing_status == "ended",
            total=finished + counts.processing,
            finished=finished,
        )

    async def results(self, status: BatchStatus) -> BatchResults:
        out: BatchResults = {}
        lines = await self._call(self._client.messages.batches.results(status.batch_id))
        try:
            async for line in lines:
                out[line.custom_id] = self._outcome(line.result, status.batch_id)
        except _import_anthropic().APIError as exc:
            raise self._error(exc) from exc
        return out

    def _outcome(self, result: Any, batch_id: str) -> Any:
        if result.type == "succeeded":
            completion = _completion(result.message, 0.0, self.model.model)
            return completion.model_copy(update={"batch": True})
        where = redact_key(f"{self.model.spec} batch {batch_id}", self.model)
        if result.type == "errored":
            return _errored(result.error, where, self.model)
        return ProviderUnavailableError(f"{where}: request {result.type}")

    async def cancel(self, batch_id: str) -> None:
        await self._call(self._client.messages.batches.cancel(batch_id))

    async def aclose(self) -> None:
        await self._client.close()

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except _import_anthropic().APIError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Any) -> ProviderError:
        where = redact_key(f"{self.model.spec} at {self.model.endpoint}", self.model)
        status = getattr(exc, "status_code", None)
        text = redact_key(str(exc), self.model)
        if status == 404:
            return BadRequestError(
                f"{where}: the Message Batches API answered HTTP 404 ({text})",
                "drop --batch for this model, or point it at Anthropic's API",
            )
        if status is None:
            return ProviderUnavailableError(f"{where}: connection failed ({text})")
        return _map_status(status, f"{where}: {text}", exc, self.model)


def _errored(error: Any, where: str, model: ModelConfig) -> ProviderError:
    """An errored result's ``{"type": "error", "error": {type, message}}`` as a typed error."""
    inner = getattr(error, "error", None)
    kind = str(getattr(inner, "type", "") or "error")
    message = redact_key(f"{where}: {kind}: {getattr(inner, 'message', '')}", model)
    if kind == "rate_limit_error":
        return RateLimitError(message)
    if kind in _TRANSIENT:
        return ProviderUnavailableError(message)
    return BadRequestError(message)
