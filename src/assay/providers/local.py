"""GGUF models in-process through the prebuilt ``xllamacpp`` wheel (imported lazily)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from assay.errors import BadRequestError, ContextLengthError, ProviderError, UserInputError
from assay.providers.specs import local_model_path
from assay.records import Completion, ModelConfig, Request

SLOT_CONTEXT = 2048  # tokens of context per parallel slot


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise UserInputError(
            "Local models need the xllamacpp package", "pip install xllamacpp"
        ) from None
    return xllamacpp


class LocalProvider:
    """One llama.cpp server in this process; ``n_parallel`` slots serve concurrent requests."""

    def __init__(self, model: ModelConfig, *, n_parallel: int = 4) -> None:
        self.model = model
        self.path = local_model_path(model)
        self.n_parallel = max(1, n_parallel)
        self._server: Any = None
        self._start_lock = asyncio.Lock()

    @property
    def base_url(self) -> str:
        """The same model over HTTP (OpenAI-compatible), bound to 127.0.0.1."""
        return f"{self._ensure_server().listening_address}/v1"

    def _ensure_server(self) -> Any:
        if self._server is None:
            self._server = _start_server(str(self.path), self.n_parallel)
        return self._server

    async def complete(self, request: Request) -> Completion:
        async with self._start_lock:
            server = await asyncio.to_thread(self._ensure_server)
        started = time.perf_counter()
        reply = await asyncio.to_thread(server.handle_chat_completions, self._body(request))
        return _completion(reply, time.perf_counter() - started, self.path.name)

    def _body(self, request: Request) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": p.temperature,
            "max_tokens": p.max_tokens if p.max_tokens is not None else SLOT_CONTEXT // 2,
        }
        optional = {"top_p": p.top_p, "seed": p.seed, "stop": list(p.stop) if p.stop else None}
        body.update({k: v for k, v in optional.items() if v is not None})
        body.update({**self.model.params, **p.extra})
        return body

    async def aclose(self) -> None:
        self._server = None


def _start_server(path: str, n_parallel: int) -> Any:
    xllamacpp = _import_xllamacpp()
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_parallel = n_parallel
    params.n_ctx = SLOT_CONTEXT * n_parallel
    threads = max(1, os.cpu_count() or 1)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    params.verbosity = -1  # llama.cpp logs every slot event to stderr otherwise
    return xllamacpp.Server(params)


def _completion(reply: Any, latency_s: float, served: str) -> Completion:
    if not isinstance(reply, dict):
        raise ProviderError(f"local model returned {type(reply).__name__}, not a reply")
    if "error" in reply:
        raise _local_error(reply["error"])
    choice = reply["choices"][0]
    usage = reply.get("usage") or {}
    return Completion(
        text=choice["message"].get("content") or "",
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        latency_s=latency_s,
        model_served=f"local/{served}",
        finish_reason=choice.get("finish_reason"),
    )


def _local_error(error: Any) -> ProviderError:
    message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    kind = error.get("type", "") if isinstance(error, dict) else ""
    if "context" in message.lower() or "context" in str(kind):
        return ContextLengthError(f"local model: {message}")
    return BadRequestError(f"local model: {message}")
