"""The batch contract: send many requests as one provider batch job, check on it, read its results.

A batch client only talks to the provider. The engine (``engine.batch``) decides what goes into
a batch, reserves the budget, polls with backoff and retries what a batch did not answer.
Vendor SDKs are imported when a client is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from assay.errors import ProviderError, UserInputError
from assay.providers.specs import PROVIDERS
from assay.records import Completion, ModelConfig, Request

BATCH_PROVIDERS_HINT = (
    "batch mode works with openai, anthropic and compat servers that serve /v1/batches; "
    "drop --batch (or batch: true) for this model"
)


@dataclass(frozen=True)
class BatchEntry:
    """One request of a batch, under the id its result comes back with."""

    custom_id: str
    request: Request


@dataclass(frozen=True)
class SubmittedBatch:
    batch_id: str
    input_file_id: str | None  # OpenAI's uploaded JSONL; Anthropic takes the requests inline


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch stands, in the provider's own word and in counts of requests."""

    batch_id: str
    status: str
    ended: bool  # nothing more will be answered: its results can be read
    total: int
    finished: int  # answered so far, errors included
    output_file_id: str | None = None
    error_file_id: str | None = None


# A result per custom_id: a completion, or why the batch did not answer it (an error line,
# an expired or cancelled request). A custom_id with no line at all is missing from the map.
BatchResults = dict[str, Completion | ProviderError]


class BatchClient(Protocol):
    async def submit(self, entries: Sequence[BatchEntry]) -> SubmittedBatch: ...

    async def status(self, batch_id: str) -> BatchStatus: ...

    async def results(self, status: BatchStatus) -> BatchResults: ...

    async def cancel(self, batch_id: str) -> None: ...

    async def aclose(self) -> None: ...


def supports_batch(model: ModelConfig) -> bool:
    return PROVIDERS[model.provider].batch


def check_batch_models(models: Sequence[ModelConfig]) -> None:
    """One line before any call for a batch model whose provider has no batch API."""
    for model in models:
        if model.batch and not supports_batch(model):
            raise UserInputError(
                f"{model.spec} cannot run in batch mode: {model.provider} has no batch API",
                BATCH_PROVIDERS_HINT,
            )


def refuse_batch(models: Sequence[ModelConfig], command: str) -> None:
    """One line for a batch model given to a command that needs each reply before the next."""
    for model in models:
        if model.batch:
            raise UserInputError(
                f"{model.spec} is in batch mode, which only assay run takes",
                f"{command} needs each reply before its next step: drop batch: true for it",
            )


def make_batch_client(model: ModelConfig, *, timeout_s: float) -> BatchClient:
    """The batch client of the model's provider kind (its SDK is imported now)."""
    kind = PROVIDERS[model.provider].kind
    if kind == "anthropic":
        from assay.providers.batch_anthropic import AnthropicBatchClient

        return AnthropicBatchClient(model, timeout_s=timeout_s)
    if kind == "openai" and supports_batch(model):
        from assay.providers.batch_openai import OpenAIBatchClient

        return OpenAIBatchClient(model, timeout_s=timeout_s)
    raise UserInputError(f"{model.spec} has no batch API", BATCH_PROVIDERS_HINT)
