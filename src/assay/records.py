"""Value objects shared by every layer: messages, requests, completions, model configs."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    seed: int | None = None
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

    @property
    def usage_known(self) -> bool:
        return self.input_tokens is not None and self.output_tokens is not None


class Spent(BaseModel):
    """What a run's calls have used so far: calls sent (retries included) and dollars."""

    model_config = ConfigDict(frozen=True)

    calls: int = 0
    cost_usd: float = 0.0


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
