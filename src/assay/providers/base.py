"""The provider contract: turn a Request into a Completion. Nothing here retries or caches."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from assay.records import Completion, Request


@runtime_checkable
class Provider(Protocol):
    """One required method. The engine owns scheduling, retries, timeouts and the cache."""

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...
