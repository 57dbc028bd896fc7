"""A scripted OpenAI-compatible HTTP server for fault injection in tests and benchmarks.

The server speaks just enough HTTP/1.1 (request line, headers, ``Content-Length`` or chunked
bodies, keep-alive, ``Connection: close``) to serve ``POST /v1/chat/completions`` and
``GET /v1/models`` on 127.0.0.1. It also serves Anthropic's ``POST /v1/messages``: the same
actions answer there in Anthropic's format (a ``message`` object, ``{"type": "error"}`` bodies,
Anthropic's SSE events), and the request's top-level ``system`` shows up in
:attr:`ChatRequest.messages` as a system message, so one handler serves both APIs. Both
APIs' batch endpoints (``batch_endpoints``) answer each request of a job with the same handler.

It runs its own asyncio event loop in a background thread, so sync and async tests use it the
same way::

    with ScriptedServer(fail_then_reply(2, error(429, retry_after=1))) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x")
        ...
        assert srv.count == 3

Each chat request is handed to a *handler* that returns an :class:`Action` (or an awaitable of
one): :func:`reply`, :func:`error`, :func:`hang`, :func:`reset`, :func:`raw`, :func:`no_choices`
or :func:`stream`. Handlers run on the server's event loop; delays use ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import math
import re
import socket
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.testing.batch_endpoints import BatchScript

__all__ = [
    "Action",
    "ChatRequest",
    "Handler",
    "ScriptedServer",
    "attempt_key_of",
    "by_content",
    "constant",
    "echo",
    "error",
    "fail_then_reply",
    "hang",
    "no_choices",
    "raw",
    "reply",
    "reset",
    "sequence",
    "stream",
]

_HEADER_LIMIT = 1 << 20
_BACKLOG = 4096


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request as the server received it."""

    index: int
    """0-based arrival order since the server started (or since ``reset_log``)."""
    body: dict[str, Any]
    """The parsed JSON body."""
    headers: Mapping[str, str]
    """Request headers, names lower-cased."""
    attempt_key: str
    """sha256 of the canonical JSON body: equal for retries of the same request."""
    path: str = "/v1/chat/completions"
    connection: int = 0
    """Serial number of the TCP connection it came on (equal numbers mean keep-alive reuse)."""
    batch_id: str | None = None
    """The batch job it came in (see ``batch_endpoints``); None for a live call."""

    @property
    def is_anthropic(self) -> bool:
        """Whether it came to Anthropic's Messages API (``/v1/messages``) rather than OpenAI's."""
        return self.path.rstrip("/").endswith("/messages")

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The ``messages`` list of the body (empty when absent).

        For an Anthropic request a top-level ``system`` comes first, as a system message.
        """
        messages = self.body.get("messages")
        listed = messages if isinstance(messages, list) else []
        system = self.body.get("system") if self.is_anthropic else None
        if system:
            return [{"role": "system", "content": _content_text(system)}, *listed]
        return listed

    @property
    def model(self) -> str:
        """The requested model name ("" when absent)."""
        return str(self.body.get("model") or "")

    @property
    def stream(self) -> bool:
        """Whether the client asked for a server-sent-events stream."""
        return bool(self.body.get("stream"))

    @property
    def last_user_text(self) -> str:
        """Text of the last ``user`` message ("" when there is none)."""
        for message in reversed(self.messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""


def attempt_key_of(body: Mapping[str, Any]) -> str:
    """The stable key of a request body: sha256 of its canonical JSON."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(str(p) for p in parts)
    return ""


def _count_input_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(
        len(_content_text(m.get("content")).split()) for m in messages if isinstance(m, dict)
    )


# --------------------------------------------------------------------------- HTTP plumbing


class _BadRequestError(Exception):
    """The bytes on the wire are not an HTTP request we understand."""


@dataclass(frozen=True)
class _HttpRequest:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


async def _read_request(reader: asyncio.StreamReader) -> _HttpRequest | None:
    """Read one request; None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _BadRequestError("truncated request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise _BadRequestError("request head too large") from exc
    method, path, version, headers = _parse_head(head)
    body = await _read_body(reader, headers)
    return _HttpRequest(method, path, version, headers, body)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequestError(f"bad request line: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequestError(f"bad header line: {line!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0].upper(), parts[1].split("?", 1)[0], parts[2], headers


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _BadRequestError("bad Content-Length") from exc
    return await reader.readexactly(length) if length > 0 else b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequestError("bad chunk size") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # skip trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _status_line(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n"


def _head_bytes(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [_status_line(status)]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class _Conn:
    """The response side of one connection, as actions see it."""

    def __init__(self, writer: asyncio.StreamWriter, keep_alive: bool, number: int = 0) -> None:
        self.writer = writer
        self.keep_alive = keep_alive
        self.number = number

    def _base_headers(self, content_type: str) -> dict[str, str]:
        return {
            "Content-Type": content_type,
            "Connection": "keep-alive" if self.keep_alive else "close",
            "Server": "assay-scripted",
        }

    async def send(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        all_headers = self._base_headers(content_type)
        all_headers.update(headers or {})
        if not any(name.lower() == "content-length" for name in all_headers):
            all_headers["Content-Length"] = str(len(body))
        self.writer.write(_head_bytes(status, all_headers) + body)
        await self.writer.drain()

    async def send_json(
        self, status: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> None:
        await self.send(status, json.dumps(payload).encode(), headers)

    async def start_chunked(self, status: int, content_type: str) -> None:
        headers = self._base_headers(content_type)
        headers["Transfer-Encoding"] = "chunked"
        headers["Cache-Control"] = "no-cache"
        self.writer.write(_head_bytes(status, headers))
        await self.writer.drain()

    async def write_chunk(self, data: bytes) -> None:
        if data:
            self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await self.writer.drain()

    async def end_chunked(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    def abort(self) -> None:
        """Close with a TCP reset (SO_LINGER 0) and no response."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# --------------------------------------------------------------------------- actions


class Action(ABC):
    """What the server does with one chat request. Build one with the constructors below."""

    @abstractmethod
    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        """Answer ``request`` on ``conn``; return whether the connection may be reused."""


def _completion(
    request: ChatRequest, model: str | None, choices: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-scripted-{request.index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or request.model or "scripted",
        "choices": choices,
    }


def _per_char(texts: list[str], rate: float) -> int:
    """Tokens as a CJK tokenizer counts them: ``rate`` per non-space character, rounded up."""
    return math.ceil(rate * sum(len("".join(t.split())) for t in texts))


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass(frozen=True)
class _Reply(Action):
    text: str
    input_tokens: int | None
    output_tokens: int | None
    delay: float
    model: str | None
    finish_reason: str
    usage: bool
    tokens_per_char: float | None = None

    def usage_json(self, request: ChatRequest) -> dict[str, int]:
        prompt = self.input_tokens
        completion = self.output_tokens
        if self.tokens_per_char is not None:
            texts = [_content_text(m.get("content")) for m in request.messages]
            return _usage(
                _per_char(texts, self.tokens_per_char) if prompt is None else prompt,
                _per_char([self.text], self.tokens_per_char) if completion is None else completion,
            )
        return _usage(
            _count_input_tokens(request.messages) if prompt is None else prompt,
            len(self.text.split()) if completion is None else completion,
        )

    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        await asyncio.sleep(self.delay)
        if request.stream:
            return await _send_stream(request, conn, self, chunk_delay=0.0)
        if request.is_anthropic:
            await conn.send_json(200, _anthropic_message(request, self, self.text))
            return conn.keep_alive
        message = {"role": "assistant", "content": self.text}
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        payload = _completion(request, self.model, [choice])
        if self.usage:
            payload["usage"] = self.usage_json(request)
        await conn.send_json(200, payload)
        return conn.keep_alive


@dataclass(frozen=True)
class _Stream(Action):
    reply: _Reply
    chunk_delay: float

    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        await asyncio.sleep(self.reply.delay)
        return await _send_stream(request, conn, self.reply, self.chunk_delay)


def _chunk(
    request: ChatRequest, model: str | None, delta: dict[str, Any], finish: str | None
) -> bytes:
    payload = _completion(request, model, [{"index": 0, "delta": delta, "finish_reason": finish}])
    payload["object"] = "chat.completion.chunk"
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _send_stream(request: ChatRequest, conn: _Conn, rep: _Reply, chunk_delay: float) -> bool:
    """Send ``rep`` as SSE chunks, one word (with its trailing space) per chunk."""
    if request.is_anthropic:
        return await _send_anthropic_stream(request, conn, rep, chunk_delay)
    await conn.start_chunked(200, "text/event-stream")
    await conn.write_chunk(_chunk(request, rep.model, {"role": "assistant", "content": ""}, None))
    for piece in re.findall(r"\s*\S+\s*", rep.text) or [rep.text]:
        await asyncio.sleep(chunk_delay)
        await conn.write_chunk(_chunk(request, rep.model, {"content": piece}, None))
    await conn.write_chunk(_chunk(request, rep.model, {}, rep.finish_reason))
    options = request.body.get("stream_options")
    if rep.usage and isinstance(options, dict) and options.get("include_usage"):
        payload = _completion(request, rep.model, [])
        payload["object"] = "chat.completion.chunk"
        payload["usage"] = rep.usage_json(request)
        await conn.write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")
    await conn.write_chunk(b"data: [DONE]\n\n")
    await conn.end_chunked()
    return conn.keep_alive


_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def _anthropic_message(request: ChatRequest, rep: _Reply, text: str) -> dict[str, Any]:
    """An Anthropic ``message`` object; ``text=""`` gives an empty content list."""
    payload: dict[str, Any] = {
        "id": f"msg_scripted_{request.index}",
        "type": "message",
        "role": "assistant",
        "model": rep.model or request.model or "scripted",
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": _STOP_REASONS.get(rep.finish_reason, rep.finish_reason),
        "stop_sequence": None,
    }
    if rep.usage:
        usage = rep.usage_json(request)
        payload["usage"] = {
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
        }
    return payload


def _event(name: str, payload: Mapping[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


async def _send_anthropic_stream(
    request: ChatRequest, conn: _Conn, rep: _Reply, chunk_delay: float
) -> bool:
    """Anthropic's SSE events: message_start, one text delta per word, message_delta, stop."""
    final = _anthropic_message(request, rep, rep.text)
    usage = final.pop("usage", {"input_tokens": 0, "output_tokens": 0})
    start = {**final, "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": usage["input_tokens"], "output_tokens": 0}
    await conn.start_chunked(200, "text/event-stream")
    await conn.write_chunk(_event("message_start", {"type": "message_start", "message": start}))
    block = {"type": "text", "text": ""}
    head = {"type": "content_block_start", "index": 0, "content_block": block}
    await conn.write_chunk(_event("content_block_start", head))
    for piece in re.findall(r"\s*\S+\s*", rep.text):
        await asyncio.sleep(chunk_delay)
        delta = {"type": "text_delta", "text": piece}
        payload = {"type": "content_block_delta", "index": 0, "delta": delta}
        await conn.write_chunk(_event("content_block_delta", payload))
    stop_block = {"type": "content_block_stop", "index": 0}
    await conn.write_chunk(_event("content_block_stop", stop_block))
    end = {"stop_reason": final["stop_reason"], "stop_sequence": None}
    tail = {
        "type": "message_delta",
        "delta": end,
        "usage": {"output_tokens": usage["output_tokens"]},
    }
    await conn.write_chunk(_event("message_delta", tail))
    await conn.write_chunk(_event("message_stop", {"type": "message_stop"}))
    await conn.end_chunked()
    return conn.keep_alive


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _anthropic_error_json(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    default = "api_error" if status >= 500 else "invalid_request_error"
    error_type = kind or _ANTHROPIC_ERROR_TYPES.get(status, default)
    return {"type": "error", "error": {"type": error_type, "message": message}}


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


@dataclass(frozen=True)
class _Error(Action):
    status: int
    message: str
    retry_after: float | None
    delay: float
    body: Mapping[str, Any] | None
    error_type: str | None
    code: str | None
    headers: Mapping[str, str] | None

    def payload(self, anthropic: bool = False) -> Mapping[str, Any]:
        if self.body is not None:
            return self.body
        if anthropic:
            return _anthropic_error_json(self.status, self.message, self.error_type)
        default_type = "server_error" if self.status >= 500 else "invalid_request_error"
        kind = self.error_type or _ERROR_TYPES.get(self.status, default_type)
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.code}}

    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        await asyncio.sleep(self.delay)
        headers = dict(self.headers or {})
        if self.retry_after is not None:
            headers["Retry-After"] = _format_seconds(self.retry_after)
        await conn.send_json(self.status, self.payload(request.is_anthropic), headers)
        return conn.keep_alive


@dataclass(frozen=True)
class _Hang(Action):
    seconds: float

    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        await asyncio.sleep(self.seconds)
        return False


@dataclass(frozen=True)
class _Reset(Action):
    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        conn.abort()
        return False


@dataclass(frozen=True)
class _Raw(Action):
    status: int
    body: bytes
    headers: Mapping[str, str] | None
    delay: float

    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        await asyncio.sleep(self.delay)
        headers = dict(self.headers or {})
        await conn.send(self.status, self.body, headers)
        # A hand-written Content-Length may not match the body: never reuse such a connection.
        own_length = any(name.lower() == "content-length" for name in headers)
        return conn.keep_alive and not own_length


@dataclass(frozen=True)
class _NoChoices(Action):
    delay: float
    model: str | None

    async def _perform(self, request: ChatRequest, conn: _Conn) -> bool:
        await asyncio.sleep(self.delay)
        if request.is_anthropic:  # Anthropic's equivalent: a message with no content blocks
            empty = _Reply("", None, 0, 0.0, self.model, "stop", True)
            await conn.send_json(200, _anthropic_message(request, empty, ""))
            return conn.keep_alive
        payload = _completion(request, self.model, [])
        payload["usage"] = _usage(_count_input_tokens(request.messages), 0)
        await conn.send_json(200, payload)
        return conn.keep_alive


def reply(
    text: str,
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    delay: float = 0.0,
    model: str | None = None,
    finish_reason: str = "stop",
    usage: bool = True,
    tokens_per_char: float | None = None,
) -> Action:
    """A normal ``chat.completion`` after ``delay`` s; usage defaults to whitespace word counts.

    ``usage=False`` leaves ``usage`` out of the reply (as some servers do), so a client must
    estimate it. ``tokens_per_char`` counts usage per non-space character instead of per word,
    as tokenizers count CJK text (about 1 to 1.5 tokens a character, where words are few).
    If the request asked for ``stream: true`` the same reply is sent as SSE chunks.
    """
    return _Reply(
        text, input_tokens, output_tokens, delay, model, finish_reason, usage, tokens_per_char
    )


def error(
    status: int,
    message: str = "scripted error",
    *,
    retry_after: float | None = None,
    delay: float = 0.0,
    body: Mapping[str, Any] | None = None,
    error_type: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Action:
    """An OpenAI-style ``{"error": {...}}`` response with ``status`` (``body`` replaces the JSON).

    On ``/v1/messages`` it is Anthropic's ``{"type": "error", "error": {"type", "message"}}``
    (use status 529 for "overloaded"). ``retry_after`` adds a ``Retry-After`` header in seconds; use
    ``code="context_length_exceeded"`` (with status 400) for context-window errors.
    """
    return _Error(status, message, retry_after, delay, body, error_type, code, headers)


def hang(seconds: float) -> Action:
    """Say nothing for ``seconds`` (to trip client read timeouts), then close the connection."""
    return _Hang(seconds)


def reset() -> Action:
    """Close the connection abruptly (TCP RST) without any response."""
    return _Reset()


def raw(
    status: int,
    body: bytes | str,
    headers: Mapping[str, str] | None = None,
    *,
    delay: float = 0.0,
) -> Action:
    """Send ``body`` verbatim (garbage, truncated or non-JSON) as ``application/json``.

    Pass a ``Content-Type`` header to change the type, or a ``Content-Length`` larger than the
    body to simulate a truncated response (the connection is then closed).
    """
    data = body.encode() if isinstance(body, str) else body
    return _Raw(status, data, headers, delay)


def no_choices(*, delay: float = 0.0, model: str | None = None) -> Action:
    """A valid ``chat.completion`` whose ``choices`` list is empty."""
    return _NoChoices(delay, model)


def stream(
    text: str,
    chunk_delay: float = 0.05,
    *,
    delay: float = 0.0,
    model: str | None = None,
    finish_reason: str = "stop",
) -> Action:
    """An SSE stream of ``text``, one word per chunk, ``chunk_delay`` s apart (slow streaming)."""
    return _Stream(_Reply(text, None, None, delay, model, finish_reason, True), chunk_delay)


# --------------------------------------------------------------------------- scripts

Handler = Callable[[ChatRequest], Action | Awaitable[Action]]
"""Decides the action for each chat request; may be sync or async."""


def constant(action: Action) -> Handler:
    """Answer every request with ``action``."""
    return lambda _request: action


def echo(*, delay: float = 0.0, prefix: str = "") -> Handler:
    """Reply with ``prefix`` + the last user message, after ``delay`` seconds."""
    return lambda request: reply(prefix + request.last_user_text, delay=delay)


def by_content(fn: Callable[[str], Action]) -> Handler:
    """Choose the action from the text of the last user message."""
    return lambda request: fn(request.last_user_text)


def sequence(*actions: Action, then: Action | None = None, per_key: bool = False) -> Handler:
    """The n-th request gets ``actions[n]``; afterwards ``then`` (default: the last action).

    With ``per_key=True`` arrivals are counted separately for each ``attempt_key``, so the
    n-th arrival of the *same* request body gets ``actions[n]``.
    """
    if not actions and then is None:
        raise ValueError("sequence() needs at least one action or `then`")
    after = then if then is not None else actions[-1]
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def handle(request: ChatRequest) -> Action:
        key = request.attempt_key if per_key else ""
        with lock:
            n = seen[key]
            seen[key] += 1
        return actions[n] if n < len(actions) else after

    return handle


def fail_then_reply(
    n_failures: int, failure: Action | None = None, success: Action | None = None
) -> Handler:
    """The first ``n_failures`` arrivals of each request body get ``failure``, then ``success``.

    Defaults: ``error(503)`` and ``reply("ok")``.
    """
    fail = failure if failure is not None else error(503, "scripted failure")
    ok = success if success is not None else reply("ok")
    return sequence(*([fail] * n_failures), then=ok, per_key=True)


# --------------------------------------------------------------------------- server


class ScriptedServer:
    """An OpenAI-compatible server on 127.0.0.1 that answers as ``handler`` scripts it."""

    def __init__(
        self,
        handler: Handler,
        *,
        models: tuple[str, ...] = ("scripted",),
        batch: BatchScript | None = None,
    ) -> None:
        from assay.testing.batch_endpoints import BatchEndpoints, BatchScript

        self.handler = handler
        self.models = models
        self.batches = BatchEndpoints(self, batch or BatchScript())
        """OpenAI's and Anthropic's batch endpoints, answered by ``handler`` line by line."""
        self.handler_errors: list[BaseException] = []
        """Exceptions raised by the handler (each answered with a 500)."""
        self._lock = threading.Lock()
        self._requests: list[ChatRequest] = []
        self._counts: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._port: int | None = None
        self._connections = 0

    # ---- lifecycle

    def start(self) -> ScriptedServer:
        """Start serving in a background thread; returns self."""
        if self._loop is not None:
            raise RuntimeError("ScriptedServer is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="assay-scripted", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result(timeout=10)
        except BaseException:
            self._close_loop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, then end the background thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            self._close_loop()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("ScriptedServer is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- request log

    @property
    def requests(self) -> list[ChatRequest]:
        """A copy of the chat requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many chat requests arrived."""
        with self._lock:
            return len(self._requests)

    def count_for(self, attempt_key: str) -> int:
        """How many times a request with this ``attempt_key`` arrived."""
        with self._lock:
            return self._counts[attempt_key]

    def reset_log(self) -> None:
        """Forget the logged requests; ``index`` starts again from 0."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()

    # ---- internals (run on the server's loop)

    async def _open(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_connection, "127.0.0.1", 0, limit=_HEADER_LIMIT, backlog=_BACKLOG
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _close_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop, self._thread, self._server, self._port = None, None, None, None

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._connections += 1
        try:
            await self._serve_requests(reader, writer, self._connections)
        except _BadRequestError as exc:
            await _answer_bad_request(writer, str(exc))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # only stop() cancels these tasks; re-raising makes 3.11's streams log it
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> None:
        while True:
            http_request = await _read_request(reader)
            if http_request is None:
                return
            conn = _Conn(writer, http_request.keep_alive, number)
            if not await self._route(http_request, conn):
                return

    async def _route(self, http_request: _HttpRequest, conn: _Conn) -> bool:
        path = http_request.path.rstrip("/")
        if http_request.method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            return await self._chat(http_request, conn)
        if http_request.method == "POST" and path in ("/v1/messages", "/messages"):
            return await self._chat(http_request, conn, anthropic=True)
        if http_request.method == "GET" and path in ("/v1/models", "/models"):
            await conn.send_json(200, self._models_json())
            return conn.keep_alive
        handled = await self.batches.route(http_request, conn)
        if handled is not None:
            return handled
        await conn.send_json(404, _error_json(f"no route for {http_request.method} {path}"))
        return conn.keep_alive

    def _models_json(self) -> dict[str, Any]:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "assay"} for m in self.models
        ]
        return {"object": "list", "data": data}

    async def _chat(self, http_request: _HttpRequest, conn: _Conn, anthropic: bool = False) -> bool:
        def failure(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
            if anthropic:
                return _anthropic_error_json(status, message)
            return _error_json(message, kind or "invalid_request_error")

        try:
            body = json.loads(http_request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            await conn.send_json(400, failure(400, f"request body is not JSON: {exc}"))
            return conn.keep_alive
        if not isinstance(body, dict):
            await conn.send_json(400, failure(400, "request body must be a JSON object"))
            return conn.keep_alive
        request = self._record(http_request, body, conn.number)
        try:
            action = await self._decide(request)
        except Exception as exc:  # a broken script must show up in the test, not hang it
            self.handler_errors.append(exc)
            message = f"scripted handler raised {exc!r}"
            await conn.send_json(500, failure(500, message, "server_error"))
            return conn.keep_alive
        return await action._perform(request, conn)

    def _record_batched(self, body: dict[str, Any], path: str, batch_id: str) -> ChatRequest:
        """Log a request that came in a batch job, as ``_record`` logs a live one."""
        return self._record(_HttpRequest("POST", path, "HTTP/1.1", {}, b""), body, 0, batch_id)

    def _record(
        self,
        http_request: _HttpRequest,
        body: dict[str, Any],
        connection: int,
        batch_id: str | None = None,
    ) -> ChatRequest:
        key = attempt_key_of(body)
        headers = http_request.headers
        with self._lock:
            index = len(self._requests)
            request = ChatRequest(
                index, body, headers, key, http_request.path, connection, batch_id
            )
            self._requests.append(request)
            self._counts[key] += 1
        return request

    async def _decide(self, request: ChatRequest) -> Action:
        outcome = self.handler(request)
        action = await outcome if inspect.isawaitable(outcome) else outcome
        if not isinstance(action, Action):
            raise TypeError(f"handler returned {action!r}, not an Action")
        return action


def _error_json(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


async def _answer_bad_request(writer: asyncio.StreamWriter, message: str) -> None:
    conn = _Conn(writer, keep_alive=False)
    with contextlib.suppress(ConnectionError):
        await conn.send_json(400, _error_json(message))
