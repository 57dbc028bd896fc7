"""What a pipeline function receives and returns (the public types of pipeline mode)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from assay.records import Sample
from assay.trace import TraceNode


@dataclass(frozen=True)
class PipelineResult:
    """The final output, and the steps that led to it (optional)."""

    output: str
    trace: Sequence[TraceNode] = ()


@dataclass(frozen=True)
class SampleView:
    """One dataset row as a pipeline sees it: its id, its input as text, its fields and its
    input messages. The reference answer is left out (and its field too): scoring compares the
    output with it, and a pipeline that could read it could leak it into the output."""

    id: str
    input: str
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    messages: tuple[Mapping[str, str], ...] = ()


def sample_view(sample: Sample, hidden_fields: Sequence[str] = ()) -> SampleView:
    fields = {k: v for k, v in sample.fields.items() if k not in hidden_fields}
    return SampleView(
        id=sample.id,
        input=sample.input_text() or _fields_text(fields),
        fields=MappingProxyType(fields),
        messages=tuple(
            MappingProxyType({"role": m.role, "content": m.content}) for m in sample.messages
        ),
    )


def _fields_text(fields: Mapping[str, Any]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in fields.items())
