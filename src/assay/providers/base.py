"""The provider contract: turn a Request into a Completion. Nothing here retries or caches."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from assay.records import Completion, ModelConfig, Request


@runtime_checkable
class Provider(Protocol):
    """One required method. The engine owns scheduling, retries, timeouts and the cache."""

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...


class ProviderFactory(Protocol):
    """Builds the provider for a resolved model; ``make_provider`` is the default one.

    Every factory takes every engine setting, so one signature serves all kinds; each kind
    uses the settings that apply to it (``local_parallel`` for in-process models, the rest
    for HTTP clients).
    """

    def __call__(
        self, model: ModelConfig, *, timeout_s: float, max_connections: int, local_parallel: int
    ) -> Provider: ...
