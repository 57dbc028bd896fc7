"""Anthropic models through the native ``anthropic`` SDK (imported lazily)."""

from __future__ import annotations

import time
from typing import Any

from assay.errors import ContextLengthError, ProviderError, ProviderUnavailableError
from assay.providers.openai_compat import _map_status, _retry_after, redact_key
from assay.providers.specs import api_key_for
from assay.records import Completion, ModelConfig, Request

DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens on every call


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError:  # pragma: no cover - anthropic is a hard dependency
        raise ProviderError("The anthropic package is missing", "pip install anthropic") from None
    return anthropic


class AnthropicProvider:
    def __init__(self, model: ModelConfig, *, timeout_s: float, max_connections: int) -> None:
        anthropic = _import_anthropic()
        self.model = model
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key_for(model) or "not-needed",
            base_url=_sdk_base_url(model.endpoint),
            max_retries=0,
            timeout=timeout_s,
        )

    async def complete(self, request: Request) -> Completion:
        anthropic = _import_anthropic()
        started = time.perf_counter()
        try:
            response = await self._client.messages.create(**self._body(request))
        except anthropic.APIError as exc:
            raise self._map_error(exc, anthropic) from exc
        return _completion(response, time.perf_counter() - started, self.model.model)

    def _body(self, request: Request) -> dict[str, Any]:
        return messages_body(self.model, request)

    def _map_error(self, exc: Exception, anthropic: Any) -> ProviderError:
        where = redact_key(f"{self.model.spec} at {self.model.endpoint}", self.model)
        if isinstance(exc, anthropic.APITimeoutError):
            from assay.errors import RequestTimeoutError

            return RequestTimeoutError(f"{where}: request timed out")
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderUnavailableError(f"{where}: connection failed", connection_failed=True)
        status = getattr(exc, "status_code", None)
        text = redact_key(str(exc), self.model)
        if status == 529:  # Anthropic's "overloaded"
            return ProviderUnavailableError(
                f"{where}: overloaded", _retry_after(exc), overloaded=True
            )
        if status == 400 and "prompt is too long" in text.lower():  # Anthropic's wording
            return ContextLengthError(f"{where}: {text}")
        return _map_status(status, f"{where}: {text}", exc, self.model)

    async def aclose(self) -> None:
        await self._client.close()


def messages_body(model: ModelConfig, request: Request) -> dict[str, Any]:
    """The Messages API body of a request, as sent live (sampling fields in ``extra_body``)."""
    p = request.params
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body: dict[str, Any] = {
        "model": model.model,
        "messages": [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ],
        "max_tokens": p.max_tokens or DEFAULT_MAX_TOKENS,
    }
    optional = {
        "system": system or None,
        "stop_sequences": list(p.stop) if p.stop else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    # anthropic>=2 dropped temperature/top_p from create(); send them as raw body fields.
    sampling = {"temperature": p.temperature, "top_p": p.top_p}
    extra = {
        **{k: v for k, v in sampling.items() if v is not None},
        **model.params,
        **p.extra,
    }
    if extra:
        body["extra_body"] = extra
    return body


def _sdk_base_url(url: str | None) -> str | None:
    """The SDK appends ``/v1/messages`` itself, so ``http://host/v1`` (as written for every other
    provider) would reach ``/v1/v1/messages``: drop one trailing ``/v1``."""
    return url.rstrip("/").removesuffix("/v1") if url else url


def _completion(response: Any, latency_s: float, requested: str) -> Completion:
    text = "".join(getattr(block, "text", "") for block in response.content if block.type == "text")
    usage = response.usage
    return Completion(
        text=text,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        latency_s=latency_s,
        model_served=str(response.model or requested),
        finish_reason=response.stop_reason,
    )
