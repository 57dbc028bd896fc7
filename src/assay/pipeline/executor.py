"""Run the user's pipeline for one work item: its output, its trace, and its model calls summed.

The sample's completion is the pipeline's output with the usage, cost and latency of all its
model calls added up (cost unknown if any call's is), cached when every call was served from
the cache, and the per-call breakdown in ``completion.pipeline``. An exception in the user's
code is that sample's error, never the run's; a spent budget or a refused key stops the run,
even when the pipeline catches it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from assay.engine.engine import Engine
from assay.errors import ProviderError
from assay.evaluation.items import WorkItem
from assay.pipeline.client import (
    AsyncPipelineClient,
    CallRecorder,
    CallSender,
    PipelineClient,
    PipelineStopped,
)
from assay.pipeline.loader import Pipeline
from assay.pipeline.tracebacks import describe
from assay.pipeline.types import PipelineResult, sample_view
from assay.records import Completion
from assay.trace import PipelineRecord, TraceNode

PIPELINE_ERROR = "pipeline"  # error_kind of a sample whose pipeline raised
NO_CALL = "the pipeline made no model call: this sample's score does not measure the run's model"
N = TypeVar("N", int, float)


class PipelineOutputError(TypeError):
    """The pipeline returned something other than a str or a PipelineResult."""


@dataclass(frozen=True)
class PipelineOutcome:
    """A sample's completion (None when the pipeline failed before any model call) and, when it
    failed, why."""

    completion: Completion | None
    error: str | None = None
    error_kind: str | None = None


class PipelineRunner:
    """Runs one pipeline for a run's work items, at most the engine's concurrency at once."""

    def __init__(
        self, pipeline: Pipeline, engine: Engine, hidden_fields: Sequence[str] = ()
    ) -> None:
        """``hidden_fields``: the sample fields a pipeline must not see (the reference's)."""
        self.pipeline = pipeline
        self.engine = engine
        self.hidden_fields = tuple(hidden_fields)
        self._slots = asyncio.Semaphore(engine.config.max_in_flight)

    async def run(self, item: WorkItem) -> PipelineOutcome:
        recorder = CallRecorder(item.variant.model)
        sender = CallSender(self.engine, item.request.params, item.request.repeat, recorder)
        async with self._slots:
            started = time.perf_counter()
            try:
                output, trace = _output(await self._call(item, sender))
            except PipelineStopped:
                raise _stop_cause(recorder) from None
            except (Exception, SystemExit) as exc:  # the user's bug: this sample's error
                if recorder.stop is not None:
                    raise recorder.stop from None
                return self._failed(exc, recorder, time.perf_counter() - started)
            wall_s = time.perf_counter() - started
        if recorder.stop is not None:  # the pipeline caught the stop and carried on
            raise recorder.stop
        return PipelineOutcome(
            sample_completion(output, recorder, _record(trace, recorder, wall_s))
        )

    async def _call(self, item: WorkItem, sender: CallSender) -> Any:
        prompt = item.variant.prompt
        text = prompt.fill(item.sample.fields) if prompt.is_template else prompt.text
        view = sample_view(item.sample, self.hidden_fields)
        function = self.pipeline.function
        if self.pipeline.is_async:
            return await function(text, view, AsyncPipelineClient(sender))
        client = PipelineClient(sender, asyncio.get_running_loop())
        value = await in_thread(function, text, view, client)
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise PipelineOutputError("the pipeline returned an awaitable: declare it async def")
        return value

    def _failed(self, exc: BaseException, recorder: CallRecorder, wall_s: float) -> PipelineOutcome:
        if isinstance(exc, ProviderError) and exc in recorder.failures:
            error, kind = str(exc), exc.kind  # a model call failed and the pipeline let it pass
        else:
            error, kind = describe(exc, self.pipeline.source), PIPELINE_ERROR
        completion = None
        if recorder.completions:  # the calls made before it failed were paid: keep them
            completion = sample_completion("", recorder, _record((), recorder, wall_s))
        return PipelineOutcome(completion, error, kind)


def _stop_cause(recorder: CallRecorder) -> BaseException:
    return recorder.stop if recorder.stop is not None else RuntimeError("pipeline stopped")


def _output(value: Any) -> tuple[str, tuple[TraceNode, ...]]:
    if isinstance(value, str):
        return value, ()
    if isinstance(value, PipelineResult):
        if not isinstance(value.output, str):
            kind = type(value.output).__name__
            raise PipelineOutputError(f"PipelineResult.output is a {kind}, not a str")
        return value.output, tuple(_node(n) for n in value.trace)
    raise PipelineOutputError(
        f"the pipeline returned a {type(value).__name__}; return a str or PipelineResult"
    )


def _node(node: Any) -> TraceNode:
    if isinstance(node, TraceNode):
        return node
    if isinstance(node, dict):
        return TraceNode(**node)
    raise PipelineOutputError(f"a trace node is a {type(node).__name__}, not a TraceNode")


def _record(trace: tuple[TraceNode, ...], recorder: CallRecorder, wall_s: float) -> PipelineRecord:
    warnings = list(recorder.warnings)
    if not recorder.completions:
        warnings.append(NO_CALL)
    warnings += [f"a model call failed and the pipeline carried on: {e}" for e in recorder.failures]
    return PipelineRecord(
        trace=trace, calls=tuple(recorder.nodes), warnings=tuple(warnings), wall_s=wall_s
    )


def sample_completion(output: str, recorder: CallRecorder, record: PipelineRecord) -> Completion:
    calls = recorder.completions
    served = dict.fromkeys(c.model_served for c in calls if c.model_served)
    reasoning = [c.reasoning_tokens for c in calls if c.reasoning_tokens is not None]
    return Completion(
        text=output,
        input_tokens=_sum([c.input_tokens for c in calls]),
        output_tokens=_sum([c.output_tokens for c in calls]),
        reasoning_tokens=sum(reasoning) if reasoning else None,
        latency_s=sum(c.latency_s for c in calls),
        model_served=", ".join(served),
        finish_reason=calls[-1].finish_reason if calls else None,
        cached=bool(calls) and all(c.cached for c in calls),
        cost_usd=_sum([c.cost_usd for c in calls]),
        usage_estimated=any(c.usage_estimated for c in calls),
        pipeline=record,
    )


def _sum(values: Sequence[N | None]) -> N | None:
    """The sum (0 for no calls), or None when any value is unknown."""
    if any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a daemon thread of its own: a pipeline that hangs cannot keep the
    process from exiting, and one thread per running sample needs no pool to size."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():  # the run stopped waiting (cancelled)
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def target() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (function(*args), None)
        except BaseException as exc:  # handed to the awaiting task, which decides
            outcome = (None, exc)
        with suppress(RuntimeError):  # the run's loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name="assay-pipeline", daemon=True).start()
    return await done
