"""The engine against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from assay.engine.engine import Budget
from assay.engine.retry import RetryPolicy
from assay.errors import (
    AuthError,
    BadRequestError,
    BudgetExceeded,
    ContextLengthError,
    MissingKeyError,
    ProviderUnavailableError,
    RateLimitError,
    RequestTimeoutError,
)
from assay.providers.base import Provider
from assay.providers.specs import check_keys, resolve_model
from assay.records import Completion, ModelConfig, Price, Request
from assay.testing import (
    ScriptedServer,
    constant,
    error,
    fail_then_reply,
    hang,
    no_choices,
    raw,
    reply,
    reset,
    sequence,
)
from tests.conftest import SleepRecorder, compat_model, make_engine, user_request


async def test_reply_text_usage_and_served_model() -> None:
    with ScriptedServer(
        constant(reply("hi there", input_tokens=7, output_tokens=2, model="served-x"))
    ) as srv:
        async with make_engine() as engine:
            c = await engine.complete(compat_model(srv), user_request())
    assert (c.text, c.input_tokens, c.output_tokens, c.model_served) == (
        "hi there",
        7,
        2,
        "served-x",
    )
    assert c.finish_reason == "stop" and not c.cached and c.latency_s > 0


async def test_retry_after_is_honoured() -> None:
    sleep = SleepRecorder()
    handler = fail_then_reply(1, error(429, "slow down", retry_after=7), reply("ok"))
    with ScriptedServer(handler) as srv:
        async with make_engine(sleep=sleep) as engine:
            c = await engine.complete(compat_model(srv), user_request())
        assert srv.count == 2
    assert c.text == "ok"
    assert sleep.delays == [7.0]


async def test_backoff_without_retry_after_grows_and_is_bounded() -> None:
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=4, base_delay_s=1.0, jitter=0.0)
    with ScriptedServer(constant(error(503))) as srv:
        async with make_engine(sleep=sleep, retry=policy) as engine:
            with pytest.raises(ProviderUnavailableError):
                await engine.complete(compat_model(srv), user_request())
        assert srv.count == 4  # bounded: exactly max_attempts requests reached the server
    assert sleep.delays == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (error(401, "bad key"), AuthError),
        (error(403, "forbidden"), AuthError),
        (error(400, "bad temperature"), BadRequestError),
        (error(404, "no such model"), BadRequestError),
        (error(400, "too long", code="context_length_exceeded"), ContextLengthError),
    ],
)
async def test_client_errors_are_never_retried(action: object, expected: type) -> None:
    with ScriptedServer(constant(action)) as srv:  # type: ignore[arg-type]
        async with make_engine(sleep=SleepRecorder()) as engine:
            with pytest.raises(expected):
                await engine.complete(compat_model(srv), user_request())
        assert srv.count == 1


async def test_persistent_429_stops_after_the_policy() -> None:
    sleep = SleepRecorder()
    with ScriptedServer(constant(error(429, retry_after=1))) as srv:
        async with make_engine(sleep=sleep) as engine:
            with pytest.raises(RateLimitError):
                await engine.complete(compat_model(srv), user_request())
        assert srv.count == 3
    assert sleep.delays == [1.0, 1.0]


async def test_timeout_is_retried_then_reported() -> None:
    with ScriptedServer(constant(hang(5))) as srv:
        async with make_engine(sleep=SleepRecorder(), timeout_s=0.3) as engine:
            with pytest.raises(RequestTimeoutError):
                await engine.complete(compat_model(srv), user_request())
        assert srv.count == 3


@pytest.mark.parametrize("action", [reset(), raw(200, b"<html>not json"), no_choices()])
async def test_broken_replies_are_retried_then_reported(action: object) -> None:
    with ScriptedServer(constant(action)) as srv:  # type: ignore[arg-type]
        async with make_engine(sleep=SleepRecorder()) as engine:
            with pytest.raises(ProviderUnavailableError):
                await engine.complete(compat_model(srv), user_request())
        assert srv.count == 3


async def test_recovers_after_transient_failures() -> None:
    handler = sequence(reset(), error(502), reply("fine"))
    with ScriptedServer(handler) as srv:
        async with make_engine(sleep=SleepRecorder()) as engine:
            c = await engine.complete(compat_model(srv), user_request())
        assert c.text == "fine" and srv.count == 3


async def test_cache_hit_on_identical_request_keeps_usage(tmp_path: Path) -> None:
    with ScriptedServer(constant(reply("x", input_tokens=11, output_tokens=3))) as srv:
        async with make_engine(tmp_path) as engine:
            first = await engine.complete(compat_model(srv), user_request())
            second = await engine.complete(compat_model(srv), user_request())
        assert srv.count == 1
    assert second.cached and not first.cached
    assert (second.input_tokens, second.output_tokens) == (11, 3)
    assert second.latency_s == first.latency_s


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.7},
        {"max_tokens": 17},
        {"seed": 3},
        {"top_p": 0.5},
        {"stop": ("END",)},
        {"extra": {"presence_penalty": 0.1}},
    ],
)
async def test_cache_misses_when_any_parameter_changes(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        async with make_engine(tmp_path) as engine:
            await engine.complete(compat_model(srv), user_request())
            await engine.complete(compat_model(srv), user_request(**change))
        assert srv.count == 2


async def test_cache_misses_on_other_messages_model_and_repeat(tmp_path: Path) -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        async with make_engine(tmp_path) as engine:
            base = user_request()
            await engine.complete(compat_model(srv), base)
            await engine.complete(compat_model(srv), user_request("other"))
            await engine.complete(compat_model(srv, "other-model"), base)
            await engine.complete(compat_model(srv), base.model_copy(update={"repeat": 1}))
        assert srv.count == 4


async def test_no_cache_config_bypasses_the_cache(tmp_path: Path) -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        async with make_engine(tmp_path, use_cache=False) as engine:
            await engine.complete(compat_model(srv), user_request())
            await engine.complete(compat_model(srv), user_request())
        assert srv.count == 2


async def test_corrupt_cache_entry_is_never_used(tmp_path: Path) -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        async with make_engine(tmp_path) as engine:
            await engine.complete(compat_model(srv), user_request())
            assert engine.cache is not None
            engine.cache._db.execute(
                "UPDATE completions SET completion = replace(completion, '\"x\"', '\"tampered\"')"
            )
            again = await engine.complete(compat_model(srv), user_request())
            assert engine.cache.corrupt_entries == 1
        assert srv.count == 2 and again.text == "x" and not again.cached


async def test_fifty_concurrent_requests_count_tokens_and_cost_exactly() -> None:
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)

    def handler(request: object) -> object:
        n = int(request.last_user_text)  # type: ignore[attr-defined]
        return reply(f"r{n}", input_tokens=100 + n, output_tokens=10 + n, delay=0.05)

    with ScriptedServer(handler) as srv:  # type: ignore[arg-type]
        model = compat_model(srv, price=price)
        async with make_engine(concurrency=50) as engine:
            done = await asyncio.gather(
                *(engine.complete(model, user_request(str(n))) for n in range(50))
            )
            totals = engine.accounting.snapshot()[("task", "m")]
    expected_in = sum(100 + n for n in range(50))
    expected_out = sum(10 + n for n in range(50))
    assert [c.text for c in done] == [f"r{n}" for n in range(50)]
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (
        50,
        expected_in,
        expected_out,
    )
    assert totals.cost_usd == pytest.approx((expected_in * 3.0 + expected_out * 15.0) / 1e6)


async def test_unknown_price_gives_unknown_cost_never_zero() -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        async with make_engine() as engine:
            c = await engine.complete(compat_model(srv), user_request())
            totals = engine.accounting.snapshot()[("task", "m")]
    assert c.cost_usd is None and not totals.cost_known


async def test_cost_budget_stops_before_it_is_exceeded() -> None:
    price = Price(input_per_mtok=1000.0, output_per_mtok=1000.0)
    with ScriptedServer(constant(reply("x", input_tokens=10, output_tokens=10))) as srv:
        model = compat_model(srv, price=price)
        budget = Budget(max_cost_usd=0.5)
        async with make_engine(budget=budget) as engine:
            spent = 0
            with pytest.raises(BudgetExceeded):
                for n in range(100):
                    await engine.complete(model, user_request(str(n), max_tokens=10))
                    spent += 1
            assert engine.ledger.spent_usd <= 0.5
        assert srv.count == spent and spent > 0


async def test_call_budget_counts_every_attempt() -> None:
    with ScriptedServer(constant(error(503))) as srv:
        async with make_engine(sleep=SleepRecorder(), budget=Budget(max_calls=2)) as engine:
            with pytest.raises(BudgetExceeded):
                await engine.complete(compat_model(srv), user_request())
        assert srv.count == 2


def test_missing_key_fails_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingKeyError) as info:
        check_keys([resolve_model("openai/gpt-4o-mini")])
    assert "OPENAI_API_KEY" in str(info.value) and "\n" not in str(info.value)


def test_base_url_override_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    check_keys([resolve_model("openai/gpt-4o-mini", base_url="http://127.0.0.1:9/v1")])


class FakeProvider:
    """Answers from memory and records what it was asked: the Provider contract, no I/O."""

    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        self.requests: list[Request] = []
        self.closed = False

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        text = f"{self.model.model}: {request.messages[-1].content}"
        return Completion(text=text, input_tokens=3, output_tokens=2, finish_reason="stop")

    async def aclose(self) -> None:
        self.closed = True


class FakeFactory:
    """A provider factory that keeps each provider it builds and the settings it was given."""

    def __init__(self) -> None:
        self.built: list[FakeProvider] = []
        self.settings: list[tuple[float, int, int]] = []

    def __call__(
        self, model: ModelConfig, *, timeout_s: float, max_connections: int, local_parallel: int
    ) -> Provider:
        self.settings.append((timeout_s, max_connections, local_parallel))
        self.built.append(FakeProvider(model))
        return self.built[-1]


async def test_custom_provider_factory_receives_every_call() -> None:
    factory = FakeFactory()
    # A hosted spec with no key set: only a real provider would need the key or the network.
    model = resolve_model("openai/fake-model")
    async with make_engine(
        provider_factory=factory, timeout_s=9.0, concurrency=5, local_parallel=2
    ) as engine:
        first = await engine.complete(model, user_request("one"))
        second = await engine.complete(model, user_request("two"))
        assert engine.provider_for(model) is factory.built[0]
    assert (first.text, second.text) == ("fake-model: one", "fake-model: two")
    assert len(factory.built) == 1 and factory.settings == [(9.0, 5, 2)]
    assert [r.messages[-1].content for r in factory.built[0].requests] == ["one", "two"]
    assert factory.built[0].closed
