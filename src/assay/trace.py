"""A pipeline's trace: the steps a pipeline took for one sample (tools, retrieval, model calls),
as stored with that sample's completion, and its compact text for a judge or the optimizer.

Below every layer (like ``records``): the store keeps it inside the completion, scoring shows
it to the judge, the report renders it. ``assay.pipeline`` re-exports ``TraceNode`` for users.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.dataclasses import dataclass

MODEL_KIND = "model"


def as_text(value: Any) -> str:
    """A node's input or output as text: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


@dataclass(frozen=True)
class TraceNode:
    """One step of a pipeline: ``TraceNode("calculator", "2+3", "5", kind="tool")``.

    ``optimized`` marks the step the prompt under test drives. Nodes of kind ``"model"`` that
    Assay records itself carry the call's tokens, cost, latency and whether the cache served it.
    """

    name: str
    input: str = ""
    output: str = ""
    optimized: bool = False
    kind: str = "step"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    cached: bool | None = None

    @field_validator("input", "output", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        return as_text(value)


class PipelineRecord(BaseModel):
    """What a pipeline did for one sample: its own trace, every model call Assay metered (in the
    order they were made), what is worth a warning, and how long the whole pipeline took."""

    model_config = ConfigDict(frozen=True)

    trace: tuple[TraceNode, ...] = ()
    calls: tuple[TraceNode, ...] = ()
    warnings: tuple[str, ...] = ()
    wall_s: float = 0.0


def render_trace(record: PipelineRecord, max_chars: int) -> str:
    """The trace as compact text of at most ``max_chars`` characters: the pipeline's own steps
    when it gave some (then a count of model calls), else its model calls. Long texts are cut
    evenly; when the steps still do not fit, the middle ones are left out and counted."""
    nodes = record.trace or record.calls
    if max_chars <= 0 or not nodes:
        return ""
    footer = f"\n({len(record.calls)} model call(s) made)" if record.trace else ""
    room = max_chars - len(footer)
    field_cap = max(40, room // max(1, 2 * len(nodes)) - 24)
    lines = [_node_line(i, node, field_cap) for i, node in enumerate(nodes, start=1)]
    return _fit(lines, room) + footer


def _node_line(index: int, node: TraceNode, cap: int) -> str:
    mark = " (prompt under test)" if node.optimized else ""
    return (
        f"{index}. [{node.kind}] {_cut(node.name, 80)}{mark}: "
        f"{_cut(node.input, cap)!r} -> {_cut(node.output, cap)!r}"
    )


def _fit(lines: Sequence[str], room: int) -> str:
    """The lines joined; the middle ones dropped (and counted) until they fit ``room``."""
    text = "\n".join(lines)
    if len(text) <= room:
        return text
    head, tail = list(lines[:-1]), lines[-1]
    while head:
        head.pop()
        gap = f"[{len(lines) - len(head) - 1} step(s) left out]"
        text = "\n".join([*head, gap, tail])
        if len(text) <= room:
            return text
    return _cut(tail, room)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
