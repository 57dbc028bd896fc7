"""The batch APIs of OpenAI and Anthropic on the scripted server, so batch mode is tested offline.

OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.
Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``GET /v1/messages/batches/{id}/results``, ``POST /v1/messages/batches/{id}/cancel``.

Each request of a batch is answered by the server's handler, exactly as a live chat call is
(it is logged in :attr:`ScriptedServer.requests` with its ``batch_id``), so an ``error(...)``
action becomes an error line. A :class:`BatchScript` adds what only batches do: a delay before
a batch is answered, a hold until the test calls :meth:`BatchEndpoints.release`, and expiry
after a number of answered requests::

    with ScriptedServer(echo(), batch=BatchScript(expire_after=3)) as srv:
        ...
        assert len(srv.batches.created) == 1
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.parser
import email.policy
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assay.testing.scripted_server import (
    _anthropic_error_json,
    _Conn,
    _error_json,
    _HttpRequest,
)

if TYPE_CHECKING:
    from assay.testing.scripted_server import ScriptedServer

__all__ = ["BatchEndpoints", "BatchScript", "ScriptedBatch"]

Lines = list[tuple[str, Any]]  # (custom_id, request body) of each request of a batch
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what Anthropic accepts


@dataclass(frozen=True)
class BatchScript:
    """How the batch endpoints behave. ``delay``: seconds a batch stays in progress before its
    requests are answered. ``hold``: stay in progress until :meth:`BatchEndpoints.release`.
    ``expire_after``: answer that many requests of each batch (in order), then end it as
    expired: the others get no answer. ``enabled=False``: no batch routes (a server without a
    batch API answers 404)."""

    delay: float = 0.0
    hold: bool = False
    expire_after: int | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Answer:
    """One request's outcome: an HTTP status and JSON body, or none (``unanswered`` says why:
    ``expired`` or ``canceled``)."""

    status: int | None
    body: Any = None
    unanswered: str = ""


@dataclass
class ScriptedBatch:
    """A batch job as the server holds it."""

    id: str
    api: str  # "openai" or "anthropic"
    requests: list[tuple[str, dict[str, Any]]]  # (custom_id, request body)
    input_file_id: str | None = None
    created_at: float = field(default_factory=time.time)
    answers: dict[str, Answer] = field(default_factory=dict)
    ended: bool = False
    expired: bool = False
    cancelled: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def custom_ids(self) -> list[str]:
        return [c for c, _ in self.requests]


class _CaptureConn(_Conn):
    """Stands in for a connection: keeps the response an action sends instead of writing it."""

    def __init__(self) -> None:  # no socket behind it
        self.keep_alive = True
        self.number = 0
        self.answer: Answer | None = None

    async def send(
        self,
        status: int,
        body: bytes,
        headers: Any = None,
        content_type: str = "application/json",
    ) -> None:
        try:
            payload = json.loads(body) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = body.decode("utf-8", "replace")
        self.answer = Answer(status, payload)

    async def start_chunked(self, status: int, content_type: str) -> None:
        self.answer = Answer(400, _error_json("a batch request cannot stream"))

    async def write_chunk(self, data: bytes) -> None:
        pass

    async def end_chunked(self) -> None:
        pass

    def abort(self) -> None:
        self.answer = None


Route = Callable[[_HttpRequest, _Conn, list[str]], Awaitable[bool]]


class BatchEndpoints:
    """The batch routes of one :class:`ScriptedServer`, and what they were sent."""

    def __init__(self, server: ScriptedServer, script: BatchScript) -> None:
        self.server = server
        self.script = script
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, ScriptedBatch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("POST", re.compile(r"/files"), self._upload),
            ("GET", re.compile(r"/files/([^/]+)/content"), self._file_content),
            ("POST", re.compile(r"/batches"), self._openai_create),
            ("GET", re.compile(r"/batches/([^/]+)"), self._openai_get),
            ("POST", re.compile(r"/batches/([^/]+)/cancel"), self._cancel),
            ("POST", re.compile(r"/messages/batches"), self._anthropic_create),
            ("GET", re.compile(r"/messages/batches/([^/]+)"), self._anthropic_get),
            ("GET", re.compile(r"/messages/batches/([^/]+)/results"), self._anthropic_results),
            ("POST", re.compile(r"/messages/batches/([^/]+)/cancel"), self._cancel),
        ]

    # ---- what tests read and do

    @property
    def created(self) -> list[ScriptedBatch]:
        """Every batch created (``batches.create``), in order."""
        with self._lock:
            return list(self._batches.values())

    def release(self) -> None:
        """Let held batches (``BatchScript(hold=True)``) be answered."""
        self._released.set()

    # ---- routing

    async def route(self, http_request: _HttpRequest, conn: _Conn) -> bool | None:
        """Answer a batch route; None when the path is not one."""
        if not self.script.enabled:
            return None
        path = http_request.path.rstrip("/").removeprefix("/v1")
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and http_request.method == method:
                return await handler(http_request, conn, list(match.groups()))
        return None

    async def _upload(self, request: _HttpRequest, conn: _Conn, _: list[str]) -> bool:
        fields = _form_fields(request)
        if fields.get("purpose") != b"batch" or "file" not in fields:
            await conn.send_json(400, _error_json("expected a file with purpose=batch"))
            return conn.keep_alive
        with self._lock:
            file_id = f"file-scripted-{len(self._files) + 1}"
            self._files[file_id] = fields["file"]
        await conn.send_json(200, _file_json(file_id, len(fields["file"])))
        return conn.keep_alive

    async def _file_content(self, request: _HttpRequest, conn: _Conn, ids: list[str]) -> bool:
        with self._lock:
            data = self._files.get(ids[0])
        if data is None:
            await conn.send_json(404, _error_json(f"no file {ids[0]}", "not_found_error"))
        else:
            await conn.send(200, data, content_type="application/octet-stream")
        return conn.keep_alive

    async def _openai_create(self, request: _HttpRequest, conn: _Conn, _: list[str]) -> bool:
        body = _json_body(request)
        with self._lock:
            data = self._files.get(str(body.get("input_file_id")))
        problem, lines = _openai_lines(data, body)
        if problem:
            await conn.send_json(400, _error_json(problem))
            return conn.keep_alive
        batch = self._start("openai", lines, str(body["input_file_id"]))
        await conn.send_json(200, self._openai_json(batch))
        return conn.keep_alive

    async def _anthropic_create(self, request: _HttpRequest, conn: _Conn, _: list[str]) -> bool:
        problem, lines = _anthropic_lines(_json_body(request))
        if problem:
            await conn.send_json(400, _anthropic_error_json(400, problem))
            return conn.keep_alive
        batch = self._start("anthropic", lines, None)
        await conn.send_json(200, self._anthropic_json(batch))
        return conn.keep_alive

    async def _openai_get(self, request: _HttpRequest, conn: _Conn, ids: list[str]) -> bool:
        return await self._send_batch(conn, ids[0], self._openai_json)

    async def _anthropic_get(self, request: _HttpRequest, conn: _Conn, ids: list[str]) -> bool:
        return await self._send_batch(conn, ids[0], self._anthropic_json)

    async def _send_batch(
        self, conn: _Conn, batch_id: str, render: Callable[[ScriptedBatch], dict[str, Any]]
    ) -> bool:
        batch = self._batch(batch_id)
        if batch is None:
            await conn.send_json(404, _error_json(f"no batch {batch_id}", "not_found_error"))
        else:
            await conn.send_json(200, render(batch))
        return conn.keep_alive

    async def _anthropic_results(self, request: _HttpRequest, conn: _Conn, ids: list[str]) -> bool:
        batch = self._batch(ids[0])
        if batch is None or not batch.ended:
            await conn.send_json(404, _anthropic_error_json(404, f"no results for {ids[0]}"))
            return conn.keep_alive
        lines = [json.dumps(_anthropic_result(c, batch.answers[c])) for c in batch.custom_ids]
        await conn.send(200, ("\n".join(lines) + "\n").encode(), content_type="application/jsonl")
        return conn.keep_alive

    async def _cancel(self, request: _HttpRequest, conn: _Conn, ids: list[str]) -> bool:
        batch = self._batch(ids[0])
        if batch is None:
            await conn.send_json(404, _error_json(f"no batch {ids[0]}", "not_found_error"))
            return conn.keep_alive
        if not batch.ended:
            batch.cancelled = True
            self._end(batch, [])
        render = self._anthropic_json if batch.api == "anthropic" else self._openai_json
        await conn.send_json(200, render(batch))
        return conn.keep_alive

    # ---- processing

    def _start(self, api: str, lines: list[tuple[str, dict[str, Any]]], file_id: str | None) -> Any:
        with self._lock:
            prefix = "msgbatch_scripted_" if api == "anthropic" else "batch_scripted_"
            batch = ScriptedBatch(f"{prefix}{len(self._batches) + 1}", api, lines, file_id)
            self._batches[batch.id] = batch
        task = asyncio.create_task(self._process(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch

    async def _process(self, batch: ScriptedBatch) -> None:
        while self.script.hold and not self._released.is_set() and not batch.ended:
            await asyncio.sleep(0.01)
        await asyncio.sleep(self.script.delay)
        if batch.ended:  # cancelled before it ran
            return
        n = self.script.expire_after
        todo = batch.requests if n is None else batch.requests[:n]
        answers = await asyncio.gather(*(self._answer(batch, body) for _, body in todo))
        if batch.ended:  # cancelled meanwhile
            return
        batch.expired = n is not None and n < len(batch.requests)
        self._end(batch, [(c, a) for (c, _), a in zip(todo, answers, strict=True)])

    async def _answer(self, batch: ScriptedBatch, body: dict[str, Any]) -> Answer:
        """The handler's action for one request, as a live call would get it."""
        path = "/v1/messages" if batch.api == "anthropic" else "/v1/chat/completions"
        request = self.server._record_batched(body, path, batch.id)
        try:
            action = await self.server._decide(request)
        except Exception as exc:  # a broken script shows up in the test, as for live calls
            self.server.handler_errors.append(exc)
            return Answer(500, _error_json(f"scripted handler raised {exc!r}", "server_error"))
        conn = _CaptureConn()
        await action._perform(request, conn)
        return conn.answer or Answer(500, _error_json("no response", "server_error"))

    def _end(self, batch: ScriptedBatch, answered: list[tuple[str, Answer]]) -> None:
        """Record the answers; every other request is expired or cancelled."""
        reason = "canceled" if batch.cancelled else "expired"
        batch.answers = {c: Answer(None, unanswered=reason) for c in batch.custom_ids}
        batch.answers.update(answered)
        if batch.api == "openai":
            self._write_result_files(batch)
        batch.ended = True

    def _write_result_files(self, batch: ScriptedBatch) -> None:
        ok = [c for c in batch.custom_ids if batch.answers[c].status == 200]
        failed = [c for c in batch.custom_ids if batch.answers[c].status != 200]
        with self._lock:
            for kind, ids in (("output", ok), ("error", failed)):
                if ids:
                    file_id = f"file-scripted-{batch.id}-{kind}"
                    lines = [json.dumps(_openai_line(c, batch.answers[c])) for c in ids]
                    self._files[file_id] = ("\n".join(lines) + "\n").encode()
                    setattr(batch, f"{kind}_file_id", file_id)

    def _batch(self, batch_id: str) -> ScriptedBatch | None:
        with self._lock:
            return self._batches.get(batch_id)

    # ---- the two APIs' batch objects

    def _openai_json(self, batch: ScriptedBatch) -> dict[str, Any]:
        answers = batch.answers.values() if batch.ended else []
        completed = sum(1 for a in answers if a.status == 200)
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": _openai_status(batch),
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at),
            "expires_at": int(batch.created_at) + 86_400,
            "request_counts": {
                "total": len(batch.requests),
                "completed": completed,
                "failed": len(answers) - completed,
            },
            "metadata": None,
        }

    def _anthropic_json(self, batch: ScriptedBatch) -> dict[str, Any]:
        counts = dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
        for answer in batch.answers.values() if batch.ended else []:
            counts[_anthropic_kind(answer)] += 1
        url = f"http://127.0.0.1:{self.server.port}/v1/messages/batches/{batch.id}/results"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if batch.ended else "in_progress",
            "request_counts": {"processing": 0 if batch.ended else len(batch.requests), **counts},
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + 86_400),
            "ended_at": _iso(time.time()) if batch.ended else None,
            "archived_at": None,
            "cancel_initiated_at": _iso(time.time()) if batch.cancelled else None,
            "results_url": url if batch.ended else None,
        }


def _openai_status(batch: ScriptedBatch) -> str:
    if not batch.ended:
        return "in_progress"
    return "cancelled" if batch.cancelled else "expired" if batch.expired else "completed"


def _openai_line(custom_id: str, answer: Answer) -> dict[str, Any]:
    line: dict[str, Any] = {"id": f"batch_req_{custom_id}", "custom_id": custom_id}
    if answer.status is None:
        code = "batch_cancelled" if answer.unanswered == "canceled" else "batch_expired"
        message = f"This request was {answer.unanswered} before it ran."
        return {**line, "response": None, "error": {"code": code, "message": message}}
    response = {"status_code": answer.status, "request_id": f"req_{custom_id}", "body": answer.body}
    return {**line, "response": response, "error": None}


def _anthropic_kind(answer: Answer) -> str:
    if answer.status is None:
        return answer.unanswered
    return "succeeded" if answer.status == 200 else "errored"


def _anthropic_result(custom_id: str, answer: Answer) -> dict[str, Any]:
    kind = _anthropic_kind(answer)
    result: dict[str, Any] = {"type": kind}
    if kind == "succeeded":
        result["message"] = answer.body
    elif kind == "errored":
        body = answer.body if isinstance(answer.body, dict) else None
        result["error"] = body or _anthropic_error_json(answer.status or 500, "no response")
    return {"custom_id": custom_id, "result": result}


def _openai_lines(data: bytes | None, body: dict[str, Any]) -> tuple[str | None, Lines]:
    """The requests of an uploaded batch file, or what is wrong with it."""
    if data is None:
        return f"no file {body.get('input_file_id')!r}", []
    if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
        return "expected endpoint /v1/chat/completions and completion_window 24h", []
    lines = [_json_object(raw) for raw in data.decode("utf-8").splitlines() if raw.strip()]
    requests: Lines = [(str(x.get("custom_id")), x.get("body")) for x in lines]
    if any(x.get("url") != "/v1/chat/completions" or x.get("method") != "POST" for x in lines):
        return "every line must POST to /v1/chat/completions", []
    problem = _check_requests(requests)
    if problem is None and len({str(b.get("model")) for _, b in requests}) > 1:
        problem = "a batch file holds requests for one model only"
    return problem, requests


def _anthropic_lines(body: dict[str, Any]) -> tuple[str | None, Lines]:
    raw = body.get("requests")
    items = raw if isinstance(raw, list) else []
    requests = [(str(x.get("custom_id")), x.get("params")) for x in items if isinstance(x, dict)]
    bad = next((c for c, _ in requests if not _CUSTOM_ID.fullmatch(c)), None)
    if bad is not None:
        return f"custom_id {bad!r} must match ^[a-zA-Z0-9_-]{{1,64}}$", []
    return _check_requests(requests), requests


def _check_requests(requests: list[tuple[str, Any]]) -> str | None:
    if not requests:
        return "a batch needs at least one request"
    if len({c for c, _ in requests}) != len(requests):
        return "custom_id values must be unique within a batch"
    if not all(isinstance(b, dict) for _, b in requests):
        return "every request needs a JSON object body"
    return None


def _form_fields(request: _HttpRequest) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    fields: dict[str, bytes] = {}
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


def _file_json(file_id: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": "batch.jsonl",
        "purpose": "batch",
        "status": "processed",
    }


def _json_body(request: _HttpRequest) -> dict[str, Any]:
    return _json_object(request.body.decode("utf-8", "replace"))


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")
