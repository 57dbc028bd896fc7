"""Every OpenAI-compatible endpoint through the official ``openai`` SDK (imported lazily)."""

from __future__ import annotations

import time
from typing import Any

from assay import secrets
from assay.errors import (
    AuthError,
    BadRequestError,
    ContextLengthError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
    RequestTimeoutError,
)
from assay.providers.specs import api_key_for
from assay.records import Completion, ModelConfig, Request

CONTEXT_MARKERS = (
    "context_length",
    "context length",
    "maximum context",
    "too many tokens",
    "exceed_context",
    "context size",
)


def _import_openai() -> Any:
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a hard dependency
        raise ProviderError("The openai package is missing", "pip install openai") from None
    return openai


class OpenAICompatProvider:
    """One model on one OpenAI-compatible endpoint. SDK retries are off: the engine retries."""

    def __init__(self, model: ModelConfig, *, timeout_s: float, max_connections: int) -> None:
        openai = _import_openai()
        self.model = model
        self._client: Any = openai.AsyncOpenAI(
            api_key=api_key_for(model) or "not-needed",
            base_url=model.endpoint,  # the engine gives each endpoint of a model its own
            max_retries=0,
            timeout=timeout_s,
            # aiohttp under the SDK: about half the CPU per request of its default httpx2
            # transport at concurrency 64-256 (docs/benchmarks.md, engine throughput)
            http_client=openai.DefaultAioHttpClient(
                limits=_limits(max_connections), timeout=timeout_s
            ),
        )

    async def complete(self, request: Request) -> Completion:
        openai = _import_openai()
        started = time.perf_counter()
        try:
            # The SDK's generic post: the same client, auth, transport and error types as
            # chat.completions.create, without its typing-driven transform of the params and
            # its response models, a third of the CPU per call (docs/benchmarks.md). The body
            # holds only JSON types, which that transform would pass through unchanged.
            response = await self._client.post(
                "/chat/completions", body=self._body(request), cast_to=_http_response()
            )
            payload = response.json()
        except openai.APIError as exc:
            raise map_openai_error(exc, self.model) from exc
        except ValueError as exc:  # a 200 whose body is not JSON (JSONDecodeError)
            raise self._unreadable(exc) from exc
        except _aiohttp_error() as exc:  # e.g. a bad status line: the SDK does not wrap it
            raise self._unreadable(exc) from exc
        return _completion(payload, time.perf_counter() - started, self.model.model)

    def _unreadable(self, problem: Exception) -> ProviderError:
        where = redact_key(f"{self.model.spec} at {self.model.endpoint}", self.model)
        if _lost_connection(problem):
            return ProviderUnavailableError(
                f"{where}: connection failed ({problem})", connection_failed=True
            )
        return ProviderUnavailableError(f"{where}: unreadable reply ({problem})")

    def _body(self, request: Request) -> dict[str, Any]:
        return chat_body(self.model, request)

    async def aclose(self) -> None:
        await self._client.close()


def chat_body(model: ModelConfig, request: Request) -> dict[str, Any]:
    """The chat-completions body of a request, as sent live and in a batch file's lines."""
    p = request.params
    body: dict[str, Any] = {
        "model": model.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": p.temperature,
    }
    optional = {
        "max_tokens": p.max_tokens,
        "top_p": p.top_p,
        "seed": p.seed,
        "stop": list(p.stop) if p.stop else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body.update({**model.params, **p.extra})
    return body


def _limits(max_connections: int) -> Any:
    import httpx2

    return httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def _lost_connection(problem: Exception) -> bool:
    """The server went away (closed or reset the connection) rather than sent bad bytes."""
    import aiohttp

    return isinstance(problem, aiohttp.ClientConnectionError)


def _aiohttp_error() -> type[Exception]:
    import aiohttp

    return aiohttp.ClientError


def _http_response() -> Any:
    import httpx2

    return httpx2.Response


def _completion(payload: Any, latency_s: float, requested: str) -> Completion:
    """A Completion from a chat-completions reply; odd shapes are an unreadable reply."""
    choices = _field(payload, "choices", list)
    choice = _field(choices[0], None, dict) if choices else None
    if not choice:
        raise ProviderUnavailableError("The endpoint returned a reply with no choices")
    text = _field(choice, "message", dict).get("content")
    if text is not None and not isinstance(text, str):
        raise ProviderUnavailableError(f"The endpoint returned non-text content: {text!r:.80}")
    usage = _field(payload, "usage", dict)
    return Completion(
        text=text or "",
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        reasoning_tokens=_count(
            _field(usage, "completion_tokens_details", dict).get("reasoning_tokens")
        ),
        latency_s=latency_s,
        model_served=str(payload.get("model") or requested),
        finish_reason=_field(choice, "finish_reason", str) or None,
    )


def _field(obj: Any, key: str | None, kind: type) -> Any:
    """``obj[key]`` (or ``obj`` itself) if it has the JSON type expected, else an empty one."""
    value = obj if key is None else obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, kind) else kind()


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def map_openai_error(exc: Exception, model: ModelConfig) -> ProviderError:
    """Translate SDK exceptions into Assay's typed errors (the engine decides on retries)."""
    openai = _import_openai()
    where = redact_key(f"{model.spec} at {model.endpoint}", model)
    message = redact_key(_error_text(exc), model)
    if isinstance(exc, openai.APITimeoutError) and not _dropped_connection(exc):
        return RequestTimeoutError(f"{where}: request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailableError(
            f"{where}: connection failed ({message})", connection_failed=True
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderUnavailableError(f"{where}: unreadable reply ({message})")
    status = getattr(exc, "status_code", None)
    return _map_status(status, f"{where}: {message}", exc, model)


def _dropped_connection(exc: BaseException) -> bool:
    """The SDK's aiohttp transport reports a closed or reset connection as a connect timeout;
    the aiohttp error underneath tells the two apart."""
    import aiohttp

    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError):
            return not isinstance(cause, TimeoutError)
        cause = cause.__cause__
    return False


def _map_status(status: int | None, text: str, exc: Exception, model: ModelConfig) -> ProviderError:
    if status == 429:
        return RateLimitError(text, _retry_after(exc))
    if status in (401, 403):
        return AuthError(text, model.api_key_env)
    if status == 404:
        return BadRequestError(text, "check the model name and --base-url")
    if (status is not None and status >= 500) or status in (408, 409, 425):
        # 503 (and Anthropic's 529): overloaded, so adaptive concurrency backs off.
        return ProviderUnavailableError(text, _retry_after(exc), overloaded=status in (503, 529))
    if any(marker in text.lower() for marker in CONTEXT_MARKERS):
        return ContextLengthError(text)
    if status is None:
        return ProviderUnavailableError(text)
    return BadRequestError(text)


def redact_key(text: str, model: ModelConfig) -> str:
    """``text`` with the model's API key, and every other secret the process knows, replaced
    by ``***`` (servers echo keys in error messages, whole or cut)."""
    secrets.remember_env(model.api_key_env)
    return secrets.redact(text)


def _error_text(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            code = inner.get("code")
            return f"{inner['message']}" + (f" [{code}]" if code else "")
    return str(getattr(exc, "message", None) or exc).splitlines()[0][:300]
