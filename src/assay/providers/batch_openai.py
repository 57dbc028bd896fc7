"""OpenAI's Batch API (and servers that copy it) through the official ``openai`` SDK.

A batch is a JSONL file of chat-completions requests, each under a ``custom_id``, uploaded with
``files.create(purpose="batch")`` and run by ``batches.create``. Answered requests come back in
the output file, failed and expired ones in the error file; both are read by ``custom_id``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from assay.errors import BadRequestError, ProviderError, ProviderUnavailableError
from assay.providers.batch import BatchEntry, BatchResults, BatchStatus, SubmittedBatch
from assay.providers.openai_compat import (
    _completion,
    _error_text,
    _import_openai,
    _map_status,
    chat_body,
    map_openai_error,
    redact_key,
)
from assay.providers.specs import api_key_for
from assay.records import ModelConfig

ENDPOINT = "/v1/chat/completions"
# Statuses after which nothing more is answered (OpenAI's batch lifecycle).
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


class OpenAIBatchClient:
    """One model's batches on one endpoint. SDK retries are off: the engine retries."""

    def __init__(self, model: ModelConfig, *, timeout_s: float) -> None:
        openai = _import_openai()
        self.model = model
        self._client: Any = openai.AsyncOpenAI(
            api_key=api_key_for(model) or "not-needed",
            base_url=model.endpoint,  # batches go to the first endpoint
            max_retries=0,
            timeout=timeout_s,
        )

    async def submit(self, entries: Sequence[BatchEntry]) -> SubmittedBatch:
        lines = [self._line(e) for e in entries]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        upload = await self._call(
            self._client.files.create(file=("assay-batch.jsonl", data), purpose="batch")
        )
        batch = await self._call(
            self._client.batches.create(
                input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h"
            )
        )
        return SubmittedBatch(batch_id=batch.id, input_file_id=upload.id)

    def _line(self, entry: BatchEntry) -> str:
        body = chat_body(self.model, entry.request)
        line = {"custom_id": entry.custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        return json.dumps(line, ensure_ascii=False)

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await self._call(self._client.batches.retrieve(batch_id))
        counts = batch.request_counts
        total = counts.total if counts else 0
        finished = (counts.completed + counts.failed) if counts else 0
        return BatchStatus(
            batch_id=batch.id,
            status=batch.status,
            ended=batch.status in ENDED,
            total=total,
            finished=finished,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )

    async def results(self, status: BatchStatus) -> BatchResults:
        """Every line of the output and error files, by custom_id."""
        out: BatchResults = {}
        for file_id in (status.error_file_id, status.output_file_id):  # an answer wins
            if file_id:
                content = await self._call(self._client.files.content(file_id))
                out.update(self._parse(content.text, status.batch_id))
        return out

    def _parse(self, text: str, batch_id: str) -> BatchResults:
        parsed: BatchResults = {}
        for raw in text.splitlines():
            line = _json_object(raw)
            custom_id = line.get("custom_id")
            if isinstance(custom_id, str):
                parsed[custom_id] = self._outcome(line, batch_id)
        return parsed

    def _outcome(self, line: dict[str, Any], batch_id: str) -> Any:
        where = redact_key(f"{self.model.spec} batch {batch_id}", self.model)
        response = line.get("response")
        if isinstance(response, dict) and response.get("status_code") == 200:
            try:
                completion = _completion(response.get("body"), 0.0, self.model.model)
            except ProviderError as exc:
                return exc
            return completion.model_copy(update={"batch": True})
        return _line_error(line, where, self.model)

    async def cancel(self, batch_id: str) -> None:
        await self._call(self._client.batches.cancel(batch_id))

    async def _call(self, pending: Any) -> Any:
        """An SDK call whose errors become Assay's typed errors; a server with no batch
        endpoints (404) is said so."""
        openai = _import_openai()
        try:
            return await pending
        except openai.NotFoundError as exc:
            where = redact_key(f"{self.model.spec} at {self.model.endpoint}", self.model)
            problem = f"the batch API answered {_status_text(exc)} ({_error_text(exc)})"
            raise BadRequestError(
                redact_key(f"{where}: {problem}", self.model),
                "a server for --batch must serve /v1/files and /v1/batches; "
                "drop --batch for this model",
            ) from exc
        except openai.APIError as exc:
            raise map_openai_error(exc, self.model) from exc

    async def aclose(self) -> None:
        await self._client.close()


def _line_error(line: dict[str, Any], where: str, model: ModelConfig) -> ProviderError:
    """Why a line holds no answer: the request's own error reply, or the batch's reason."""
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, dict):
        status = response.get("status_code")
        body = response.get("body")
        inner = body.get("error") if isinstance(body, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else None
        text = redact_key(f"{where}: {message or 'error reply'}", model)
        return _map_status(status if isinstance(status, int) else None, text, Exception(), model)
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    reason = f"{where}: {code or 'no answer'} ({message})"
    return ProviderUnavailableError(redact_key(reason, model))


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _status_text(exc: Any) -> str:
    return f"HTTP {getattr(exc, 'status_code', '?')}"
