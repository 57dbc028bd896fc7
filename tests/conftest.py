"""Shared fixtures: a scripted server, an engine factory, an isolated run store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.engine.cache import ResponseCache
from assay.engine.engine import Engine, EngineConfig
from assay.engine.retry import RetryPolicy
from assay.pricing import PriceTable
from assay.providers import make_provider
from assay.providers.base import ProviderFactory
from assay.providers.specs import resolve_model
from assay.records import GenerationParams, Message, ModelConfig, Price, Request
from assay.testing import ScriptedServer, echo


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own run store and cache directory."""
    monkeypatch.setenv("ASSAY_STORE", str(tmp_path / "store"))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(echo()) as srv:
        yield srv


class SleepRecorder:
    """Stands in for asyncio.sleep so retry tests run instantly and record the delays."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def compat_model(srv: ScriptedServer, name: str = "m", price: Price | None = None) -> ModelConfig:
    return resolve_model(f"compat/{name}", base_url=srv.base_url, label=name, price=price)


def make_engine(
    tmp_path: Path | None = None,
    *,
    sleep: SleepRecorder | None = None,
    provider_factory: ProviderFactory = make_provider,
    **config: object,
) -> Engine:
    retry = config.pop("retry", RetryPolicy(max_attempts=3, base_delay_s=0.01))
    cfg = EngineConfig(retry=retry, **config)
    cache = ResponseCache(tmp_path / "cache.sqlite") if tmp_path is not None else None
    return Engine(
        cfg,
        prices=PriceTable.bundled(),
        cache=cache,
        sleep=asyncio.sleep if sleep is None else sleep,
        provider_factory=provider_factory,
    )


def user_request(text: str = "hello", **params: object) -> Request:
    return Request(
        messages=(Message(role="user", content=text),),
        params=GenerationParams(**params),
    )
