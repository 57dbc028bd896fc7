"""Value objects shared by every layer: messages, requests, completions, model configs."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assay.trace import PipelineRecord

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
    # The share of the price a provider's batch API takes off (0.5: half price); None where
    # no batch price is known, and batch calls are then charged the standard price.
    batch_discount: float | None = Field(default=None, ge=0, le=1)


class ModelConfig(BaseModel):
    """A resolved model: which provider, which endpoint, which key variable (never the key)."""

    model_config = ConfigDict(frozen=True)

    spec: str
    provider: str
    model: str
    label: str
    # One endpoint, or several serving the same model (replicas): the engine spreads calls
    # over them. A list of one is that one URL, so it keeps the same cache key.
    base_url: str | tuple[str, ...] | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    price: Price | None = None
    # This model's own generation settings (a sweep variant's), sent instead of the run's;
    # typed, so the budget, the estimate and the cache key see them. None: the run's.
    generation: GenerationParams | None = None
    # Send this model's requests through its provider's batch API (``--batch``).
    batch: bool = False

    @field_validator("base_url", mode="before")
    @classmethod
    def _one_url_is_a_url(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return value[0] if len(value) == 1 else (tuple(value) or None)
        return value

    @property
    def is_local(self) -> bool:
        return self.provider == "local"

    @property
    def base_urls(self) -> tuple[str, ...]:
        """Every endpoint of the model, in the order given (none for an in-process model)."""
        if self.base_url is None:
            return ()
        return (self.base_url,) if isinstance(self.base_url, str) else self.base_url

    @property
    def endpoint(self) -> str | None:
        """The first (or only) endpoint: the one a provider built for this config reaches."""
        urls = self.base_urls
        return urls[0] if urls else None


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
    # Answered through a provider's batch API: charged at the batch price, and its latency is
    # the batch's turnaround rather than the model's.
    batch: bool = False
    # A pipeline's sample (``--pipeline``): the text is its output, the usage, cost and latency
    # are summed over its model calls, and this holds its trace and each call. Left out of the
    # JSON when None, so a plain completion is stored (and cached) as before.
    pipeline: PipelineRecord | None = Field(default=None, exclude_if=lambda v: v is None)

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


class AdaptiveLimitUse(BaseModel):
    """How ``--concurrency auto`` moved one endpoint's limit of calls in flight."""

    model_config = ConfigDict(frozen=True)

    final: int
    lowest: int
    highest: int
    increases: int = 0
    decreases: int = 0


class EndpointUse(BaseModel):
    """What one endpoint (base URL) did in a run: which replica failed, and how often."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    requests: int = 0  # calls sent there, retries included
    errors: int = 0  # of those, calls that failed (any error)
    overloaded: int = 0  # of the errors, "slow down" replies (429, 503, 529)
    taken_out: int = 0  # times taken out for a cool-down after a connection failure
    limit: AdaptiveLimitUse | None = None  # with --concurrency auto

    def plus(self, later: EndpointUse) -> EndpointUse:
        """The counts of two sessions of a run; the limit as the later one left it."""
        return EndpointUse(
            base_url=self.base_url,
            requests=self.requests + later.requests,
            errors=self.errors + later.errors,
            overloaded=self.overloaded + later.overloaded,
            taken_out=self.taken_out + later.taken_out,
            limit=_later_limit(self.limit, later.limit),
        )


def _later_limit(
    earlier: AdaptiveLimitUse | None, later: AdaptiveLimitUse | None
) -> AdaptiveLimitUse | None:
    if earlier is None or later is None:
        return later or earlier
    return AdaptiveLimitUse(
        final=later.final,
        lowest=min(earlier.lowest, later.lowest),
        highest=max(earlier.highest, later.highest),
        increases=earlier.increases + later.increases,
        decreases=earlier.decreases + later.decreases,
    )


def merge_endpoint_use(earlier: list[EndpointUse], later: list[EndpointUse]) -> list[EndpointUse]:
    """The per-endpoint counts of a run's sessions added up by base URL, first seen first."""
    merged = {use.base_url: use for use in earlier}
    for use in later:
        merged[use.base_url] = merged[use.base_url].plus(use) if use.base_url in merged else use
    return list(merged.values())


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
