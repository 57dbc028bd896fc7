"""Value objects shared by every layer: messages, requests, completions, model configs."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


class GenerationParams(BaseModel):
    """Every parameter that changes a result; all of them are part of the cache key."""

    model_config = ConfigDict(frozen=True)

    temperature: float = 0.0
    max_tokens: int | None = 256
    top_p: float | None = None
    seed: int | None = Field(default=None, ge=0)  # numpy refuses negative seeds
    stop: tuple[str, ...] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Request(BaseModel):
    """One call to one model. ``repeat`` makes ``--repeats N`` give N distinct cached samples."""

    model_config = ConfigDict(frozen=True)

    messages: tuple[Message, ...]
    params: GenerationParams = GenerationParams()
    repeat: int = 0


class Price(BaseModel):
    """USD per million tokens, with where the number came from."""

    model_config = ConfigDict(frozen=True)

    input_per_mtok: float
    output_per_mtok: float
    source: str = "user"
    as_of: str = ""


class ModelConfig(BaseModel):
    """A resolved model: which provider, which endpoint, which key variable (never the key)."""

    model_config = ConfigDict(frozen=True)

    spec: str
    provider: str
    model: str
    label: str
    base_url: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    price: Price | None = None
    # This model's own generation settings (a sweep variant's), sent instead of the run's;
    # typed, so the budget, the estimate and the cache key see them. None: the run's.
    generation: GenerationParams | None = None

    @property
    def is_local(self) -> bool:
        return self.provider == "local"


class Completion(BaseModel):
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    latency_s: float = 0.0
    model_served: str = ""
    finish_reason: str | None = None
    cached: bool = False
    cost_usd: float | None = None
    # The reply carried no (or partial) usage: its cost stays unknown, and the budget was
    # charged a safe estimate instead. False in completions stored before the flag existed.
    usage_estimated: bool = False

    @field_validator("text")
    @classmethod
    def _repair_text(cls, text: str) -> str:
        # A reply cut inside an emoji can hold half a UTF-16 pair, which no store can encode.
        return repair_surrogates(text)

    @property
    def usage_known(self) -> bool:
        return self.input_tokens is not None and self.output_tokens is not None


class Spent(BaseModel):
    """What a run's calls have used so far: calls sent (retries included) and dollars."""

    model_config = ConfigDict(frozen=True)

    calls: int = 0
    cost_usd: float = 0.0


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def repair_surrogates(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate (half of a cut emoji, as JavaScript or a
    ``\\ud83d`` JSON escape leaves it) replaced by U+FFFD; such text cannot be encoded."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Sample(BaseModel):
    """One dataset row. ``messages`` is the input conversation (no reference answer in it)."""

    model_config = ConfigDict(frozen=True)

    id: str
    line: int
    messages: tuple[Message, ...] = ()
    fields: dict[str, Any] = Field(default_factory=dict)
    reference: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def input_text(self) -> str:
        """The task input as plain text, for judges and reports."""
        return "\n\n".join(m.content for m in self.messages if m.role != "system")
