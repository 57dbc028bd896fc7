"""The client a pipeline calls models with: ``client.chat.completions.create(...)``, the part of
the OpenAI chat interface agents use, every call sent through the run's engine.

So a pipeline's calls get the run's model (whatever ``model=`` the code names: a different name
is a warning on the sample), the response cache, the budget, the concurrency limits, the retry
policy, and their tokens, cost and latency metered per call. Sync pipelines get a sync client
(they run in a thread of their own; each call is handed to the run's event loop); async
pipelines get an async one.

Only text messages are sent: ``tools=``, streaming and ``n > 1`` are refused with a
:class:`PipelineClientError`, which the pipeline may catch.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from assay.engine.engine import Engine
from assay.errors import AuthError, BudgetExceeded, ProviderError
from assay.pipeline.replies import ChatCompletion, chat_completion
from assay.records import (
    Completion,
    GenerationParams,
    Message,
    ModelConfig,
    Request,
    canonical_json,
)
from assay.trace import MODEL_KIND, TraceNode

REPEAT_STRIDE = 1000  # above any --repeats index: the n-th identical call of a sample
CALL_INPUT_CHARS = 4000  # of each call's messages kept in its trace node (the end is kept)
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
PARAMS = ("temperature", "top_p", "seed")
PASSED_THROUGH = ("response_format", "presence_penalty", "frequency_penalty")
IGNORED = ("user", "metadata", "store", "timeout", "extra_headers", "extra_query")
REFUSED = {
    "tools": "tools= is not passed through: Assay's client sends text messages only; "
    "describe the tools in the prompt and parse the reply (see docs/pipelines.md)",
    "tool_choice": "tool_choice= is not passed through (no tools are sent)",
    "functions": "functions= is not passed through (no tools are sent)",
    "function_call": "function_call= is not passed through (no tools are sent)",
    "parallel_tool_calls": "parallel_tool_calls= is not passed through (no tools are sent)",
}


class PipelineClientError(TypeError):
    """A call the client cannot make as asked (a tool, a stream, an unknown argument)."""


class PipelineStopped(BaseException):
    """The run must stop (its budget is spent, or a key was refused). A BaseException, so a
    pipeline's ``except Exception`` does not swallow it; the run re-raises the cause."""


StopCause = AuthError | BudgetExceeded


@dataclass
class CallRecorder:
    """What one sample's pipeline did with its client, recorded on the run's event loop."""

    model: ModelConfig
    completions: list[Completion] = field(default_factory=list)
    nodes: list[TraceNode] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[ProviderError] = field(default_factory=list)
    stop: StopCause | None = None
    _seen: Counter[str] = field(default_factory=Counter)

    def occurrence(self, request: Request) -> int:
        """How many identical calls this sample made before (each is its own cache entry)."""
        key = canonical_json(request.model_dump(mode="json"))
        self._seen[key] += 1
        return self._seen[key] - 1

    def warn(self, line: str) -> None:
        if line not in self.warnings:
            self.warnings.append(line)

    def record(self, request: Request, completion: Completion) -> None:
        self.completions.append(completion)
        self.nodes.append(
            TraceNode(
                name=self.model.label,
                input=_messages_text(request.messages),
                output=completion.text,
                kind=MODEL_KIND,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                cost_usd=completion.cost_usd,
                latency_s=completion.latency_s,
                cached=completion.cached,
            )
        )


@dataclass(frozen=True)
class CallSender:
    """Turns one ``create(...)`` into an engine call for one sample's pipeline."""

    engine: Engine
    params: GenerationParams  # the run's settings for this variant; the call's own win
    repeat: int
    recorder: CallRecorder

    @property
    def model(self) -> ModelConfig:
        return self.recorder.model

    async def send(self, kwargs: Mapping[str, Any]) -> ChatCompletion:
        request = self._request(kwargs)
        self._check_model(kwargs.get("model"))
        occurrence = self.recorder.occurrence(request)
        request = request.model_copy(update={"repeat": self.repeat + REPEAT_STRIDE * occurrence})
        try:
            completion = await self.engine.complete(self.model, request, purpose="task")
        except (BudgetExceeded, AuthError) as exc:
            self.recorder.stop = exc
            raise PipelineStopped(str(exc)) from None
        except ProviderError as exc:
            self.recorder.failures.append(exc)
            raise
        self.recorder.record(request, completion)
        return chat_completion(completion, f"assay-{len(self.recorder.nodes)}")

    def _request(self, kwargs: Mapping[str, Any]) -> Request:
        _refuse(kwargs)
        try:
            return Request(messages=_messages(kwargs.get("messages")), params=self._params(kwargs))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise PipelineClientError(f"create(): {where}: {problem['msg']}") from None

    def _params(self, kwargs: Mapping[str, Any]) -> GenerationParams:
        update: dict[str, Any] = {k: kwargs[k] for k in PARAMS if kwargs.get(k) is not None}
        max_tokens = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
        if max_tokens is not None:
            update["max_tokens"] = max_tokens
        stop = kwargs.get("stop")
        if stop is not None:
            update["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        extra = {k: kwargs[k] for k in PASSED_THROUGH if kwargs.get(k) is not None}
        update["extra"] = {**self.params.extra, **extra}
        return GenerationParams.model_validate({**self.params.model_dump(), **update})

    def _check_model(self, named: object) -> None:
        model = self.model
        if named is None or named in (model.spec, model.model, model.label):
            return
        self.recorder.warn(
            f"the pipeline asked for model {str(named)[:80]!r}; "
            f"the run's model {model.spec} answered instead"
        )


def _refuse(kwargs: Mapping[str, Any]) -> None:
    for name, why in REFUSED.items():
        if kwargs.get(name) is not None:
            raise PipelineClientError(why)
    if kwargs.get("stream"):
        raise PipelineClientError(
            "stream=True is not supported: Assay's client returns whole replies"
        )
    if kwargs.get("n") not in (None, 1):
        raise PipelineClientError("n > 1 is not supported: make one call per reply")
    known = {"model", "messages", "max_tokens", "max_completion_tokens", "stop", "stream", "n"}
    unknown = set(kwargs) - known - set(PARAMS) - set(PASSED_THROUGH) - set(IGNORED)
    if unknown:
        raise PipelineClientError(
            f"create() got unsupported argument(s): {', '.join(sorted(unknown))}"
        )


def _messages(raw: object) -> tuple[Message, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise PipelineClientError("messages= must be a non-empty list of {'role', 'content'}")
    return tuple(_message(m) for m in raw)


def _message(raw: object) -> Message:
    """A message given as a dict, or as an object with ``role`` and ``content`` (a reply's
    ``choices[0].message`` appended to the conversation)."""
    role, content = _field(raw, "role"), _field(raw, "content")
    if ROLES.get(str(role)) is None:
        raise PipelineClientError(
            f"message role {role!r} is not supported: Assay's client sends system, user "
            "and assistant text messages only"
        )
    return Message.model_validate({"role": ROLES[str(role)], "content": _content(content)})


def _field(raw: object, name: str) -> object:
    return raw.get(name) if isinstance(raw, Mapping) else getattr(raw, name, None)


def _content(content: object) -> str:
    """Text content, or the text parts of a list of parts (other parts are refused)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise PipelineClientError("only text content parts are supported")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise PipelineClientError(f"message content must be text, not {type(content).__name__}")


def _messages_text(messages: Sequence[Message]) -> str:
    text = "\n".join(f"{m.role}: {m.content}" for m in messages)
    return text if len(text) <= CALL_INPUT_CHARS else "…" + text[-(CALL_INPUT_CHARS - 1) :]


Create = Callable[..., Any]


class _Completions:
    def __init__(self, create: Create) -> None:
        self.create = create


class _Chat:
    def __init__(self, create: Create) -> None:
        self.completions = _Completions(create)


class AsyncPipelineClient:
    """For ``async def`` pipelines: ``await client.chat.completions.create(...)``."""

    def __init__(self, sender: CallSender) -> None:
        self.model = sender.model.spec  # the run's model: pass model=client.model
        self._sender = sender
        self.chat = _Chat(self._create)

    async def _create(self, **kwargs: Any) -> ChatCompletion:
        return await self._sender.send(kwargs)


class PipelineClient:
    """For plain ``def`` pipelines (run in a thread): ``client.chat.completions.create(...)``
    blocks that thread while the run's event loop makes the call."""

    def __init__(self, sender: CallSender, loop: asyncio.AbstractEventLoop) -> None:
        self.model = sender.model.spec
        self._sender = sender
        self._loop = loop
        self.chat = _Chat(self._create)

    def _create(self, **kwargs: Any) -> ChatCompletion:
        call = self._sender.send(kwargs)
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()
