"""Prompt templates: a system prompt, or a user template with ``{{field}}`` slots.

Only ``{{ name }}`` with a valid (optionally dotted) name is a slot. Every other brace —
``{}``, ``{{ 1 + 1 }}``, a JSON example, a backslash — stays literal text; ``str.format`` is never
used, because a rubric or prompt containing ``{}`` must not crash or change a run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from assay.data.datasets import MISSING, Dataset, get_path
from assay.errors import DataError
from assay.files import NotRegularFileError, open_regular
from assay.records import Message, Sample, sha256_text

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
SLOT = re.compile(rf"\{{\{{\s*({_NAME})\s*\}}\}}")
# A slot with a brace missing (``{{text}``, ``{text}}``, ``{{text``): sent as literal text,
# which is almost never what the author meant, so it is worth a warning.
NEAR_SLOT = re.compile(
    "|".join(
        (
            rf"\{{\{{\s*{_NAME}\s*\}}(?!\}})",  # {{text}
            rf"(?<!\{{)\{{\s*{_NAME}\s*\}}\}}",  # {text}}
            rf"\{{\{{\s*{_NAME}(?![\w.-])(?!\s*\}})",  # {{text
        )
    )
)
MAX_PROMPT_BYTES = 8 << 20  # far beyond any context window; keeps a huge file from loading


class PromptTemplate(BaseModel):
    """The prompt under test. ``text`` is exactly what is hashed, rendered and saved."""

    model_config = ConfigDict(frozen=True)

    text: str
    path: str | None = None

    @classmethod
    def from_text(cls, text: str, path: str | None = None) -> PromptTemplate:
        return cls(text=text, path=path)

    @property
    def slots(self) -> list[str]:
        """Slot names in order of first appearance, each once."""
        return list(dict.fromkeys(m.group(1) for m in SLOT.finditer(self.text)))

    @property
    def hash(self) -> str:
        return sha256_text(self.text)

    @property
    def is_template(self) -> bool:
        return bool(self.slots)

    def fill(self, fields: Mapping[str, Any]) -> str:
        """The text with every slot replaced by its field; a missing field is a DataError."""
        return SLOT.sub(lambda m: self._slot_value(fields, m.group(1)), self.text)

    def render(self, sample: Sample) -> tuple[Message, ...]:
        """The messages to send for ``sample``.

        Without slots the text is a system prompt placed before the sample's own messages. If
        the sample brings its own system message, both are kept, the prompt's first: the prompt
        under test frames the task and the row's instructions stay as the user wrote them.
        With slots the filled text is the user message, after any system messages of the sample.
        """
        if not self.is_template:
            return (Message(role="system", content=self.text), *sample.messages)
        system = tuple(m for m in sample.messages if m.role == "system")
        return (*system, Message(role="user", content=self.fill(sample.fields)))

    @property
    def warnings(self) -> list[str]:
        """One line per brace typo that is sent as literal text, naming file:line."""
        where = self.path or "<prompt>"
        return [
            f"{where}:{self.text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r} is not a "
            "slot (write {{field}}); it is sent as literal text"
            for m in NEAR_SLOT.finditer(self.text)
        ]

    def check_slots(self, dataset: Dataset) -> None:
        """Fail before any model call if a slot has no field in some row, or leaks the answer."""
        if not self.slots:
            return  # a system prompt reads no fields: no need to read the rows
        gaps = _slot_gaps(dataset, self.slots)
        for slot in self.slots:
            if slot == dataset.reference_field:
                raise self._slot_error(
                    slot,
                    f"slot {{{{{slot}}}}} is the reference field of {dataset.path}",
                    "filling it would show the model the answer; remove the slot",
                )
            if slot in gaps:
                problem = _missing_problem(slot, dataset, gaps[slot])
                raise self._slot_error(slot, problem, _available(dataset.fields))

    def _slot_value(self, fields: Mapping[str, Any], name: str) -> str:
        value = get_path(fields, name)
        if value is MISSING:
            raise self._slot_error(
                name, f"slot {{{{{name}}}}} has no matching field", _available(list(fields))
            )
        return _as_text(value)

    def _slot_error(self, slot: str, problem: str, hint: str | None) -> DataError:
        return DataError(self.path or "<prompt>", self._slot_line(slot), problem, hint)

    def _slot_line(self, slot: str) -> int | None:
        for match in SLOT.finditer(self.text):
            if match.group(1) == slot:
                return self.text.count("\n", 0, match.start()) + 1
        return None


def load_prompt(path: str | Path) -> PromptTemplate:
    """Read a plain-text or Markdown prompt; surrounding whitespace is not part of it."""
    p = Path(path)
    text = _read_text(p).replace("\r\n", "\n").strip()
    if not text:
        raise DataError(str(p), None, "the prompt file is empty", "write the prompt in it")
    return PromptTemplate(text=text, path=str(p))


def _read_text(p: Path) -> str:
    try:
        with open_regular(p) as f:
            data = f.read(MAX_PROMPT_BYTES + 1)
    except NotRegularFileError as exc:
        raise DataError(str(p), None, f"is {exc.kind}, not a prompt file") from None
    except FileNotFoundError:
        raise DataError(str(p), None, "prompt file not found", "check the path") from None
    except OSError as exc:
        raise DataError(str(p), None, f"cannot read the prompt file: {exc.strerror}") from None
    if len(data) > MAX_PROMPT_BYTES:
        problem = f"the prompt file is larger than {MAX_PROMPT_BYTES >> 20} MiB"
        raise DataError(str(p), None, problem, "is this the prompt file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            str(p), line, "not valid UTF-8", "re-encode the prompt file as UTF-8"
        ) from None


@dataclass
class _Gap:
    """The rows that lack a slot's field: the first one's line, and how many."""

    first_line: int
    count: int = 0


def _slot_gaps(dataset: Dataset, slots: list[str]) -> dict[str, _Gap]:
    """Every slot some row lacks, found in one pass over the rows."""
    gaps: dict[str, _Gap] = {}
    for sample in dataset.iter_samples():
        for slot in slots:
            if get_path(sample.fields, slot) is MISSING:
                gaps.setdefault(slot, _Gap(sample.line)).count += 1
    return gaps


def _missing_problem(slot: str, dataset: Dataset, gap: _Gap) -> str:
    if gap.count == len(dataset):
        return f"slot {{{{{slot}}}}} has no matching field in {dataset.path}"
    return (
        f"slot {{{{{slot}}}}} has no matching field in {dataset.path} line {gap.first_line} "
        f"({gap.count} of {len(dataset)} rows lack it)"
    )


def _available(names: list[str]) -> str:
    return f"fields available: {', '.join(names)}" if names else "the rows have no fields"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)
