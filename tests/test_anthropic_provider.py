"""The real ``anthropic`` SDK through the engine, against the scripted ``/v1/messages`` route."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from assay.errors import (
    AuthError,
    BadRequestError,
    ContextLengthError,
    MissingKeyError,
    ProviderUnavailableError,
)
from assay.pricing import PriceTable, cost_usd
from assay.providers.anthropic_provider import DEFAULT_MAX_TOKENS
from assay.providers.specs import check_keys, resolve_model
from assay.records import GenerationParams, Message, ModelConfig, Request
from assay.testing import (
    Action,
    ChatRequest,
    ScriptedServer,
    constant,
    error,
    fail_then_reply,
    reply,
)
from tests.conftest import SleepRecorder, make_engine, user_request

SPEC = "anthropic/claude-haiku-4-5"
DUMMY_KEY = "sk-ant-test-dummy"


@pytest.fixture(autouse=True)
def _dummy_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", DUMMY_KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)  # the SDK would read it otherwise


def claude(srv: ScriptedServer, **overrides: object) -> ModelConfig:
    return resolve_model(SPEC, base_url=srv.base_url, **overrides)  # type: ignore[arg-type]


async def test_text_usage_served_model_and_cost() -> None:
    action = reply("Bonjour", input_tokens=1200, output_tokens=300, model="claude-haiku-4-5-2025")
    with ScriptedServer(constant(action)) as srv:
        async with make_engine() as engine:
            c = await engine.complete(claude(srv), user_request("hi"))
        request = srv.requests[0]
    assert (c.text, c.input_tokens, c.output_tokens) == ("Bonjour", 1200, 300)
    assert c.model_served == "claude-haiku-4-5-2025"
    assert c.finish_reason == "end_turn" and c.latency_s > 0 and not c.cached
    # Priced from the real usage and the bundled table's entry for the spec.
    price = PriceTable.bundled().lookup(resolve_model(SPEC))
    assert price is not None
    assert c.cost_usd == pytest.approx(cost_usd(price, 1200, 300))
    # The native API: srv.base_url ends in /v1, and the SDK still reaches /v1/messages once.
    assert request.path == "/v1/messages" and request.is_anthropic
    # The key from ANTHROPIC_API_KEY (older SDKs send x-api-key, newer ones a bearer token).
    sent_key = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    assert sent_key.removeprefix("Bearer ") == DUMMY_KEY
    assert request.model == "claude-haiku-4-5"


async def test_system_prompt_is_sent_as_top_level_system() -> None:
    seen: list[list[dict[str, object]]] = []

    def handler(request: ChatRequest) -> Action:
        seen.append(request.messages)
        return reply(f"echo {request.last_user_text}")

    messages = (
        Message(role="system", content="Be terse."),
        Message(role="system", content="Answer in French."),
        Message(role="user", content="hello"),
    )
    with ScriptedServer(handler) as srv:
        async with make_engine() as engine:
            c = await engine.complete(claude(srv), Request(messages=messages))
        body = srv.requests[0].body
    assert body["system"] == "Be terse.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert c.text == "echo hello"
    # Handlers see the system prompt as the first message, as on the OpenAI route.
    assert seen[0][0] == {"role": "system", "content": "Be terse.\n\nAnswer in French."}


async def test_no_system_key_without_a_system_message() -> None:
    with ScriptedServer(constant(reply("ok"))) as srv:
        async with make_engine() as engine:
            await engine.complete(claude(srv), user_request("hello"))
        body = srv.requests[0].body
    assert "system" not in body
    assert body["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(("max_tokens", "sent"), [(None, DEFAULT_MAX_TOKENS), (17, 17)])
async def test_max_tokens_is_always_sent(max_tokens: int | None, sent: int) -> None:
    with ScriptedServer(constant(reply("ok"))) as srv:
        async with make_engine() as engine:
            await engine.complete(claude(srv), user_request("hi", max_tokens=max_tokens))
        body = srv.requests[0].body
    assert body["max_tokens"] == sent
    assert body["temperature"] == 0.0  # the recorded default is what goes on the wire
    assert "top_p" not in body


async def test_generation_params_and_model_params_reach_the_body() -> None:
    request = Request(
        messages=(Message(role="user", content="hi"),),
        params=GenerationParams(temperature=0.3, top_p=0.9, stop=("END",), max_tokens=40),
    )
    with ScriptedServer(constant(reply("ok"))) as srv:
        async with make_engine() as engine:
            await engine.complete(claude(srv, params={"top_k": 5}), request)
        body = srv.requests[0].body
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"] and body["max_tokens"] == 40
    assert body["top_k"] == 5  # per-model params ride along as extra body fields


async def test_max_tokens_stop_reason_is_reported() -> None:
    with ScriptedServer(constant(reply("cut sho", finish_reason="length"))) as srv:
        async with make_engine() as engine:
            c = await engine.complete(claude(srv), user_request())
    assert c.finish_reason == "max_tokens" and c.text == "cut sho"


async def test_429_retry_after_is_honoured() -> None:
    sleep = SleepRecorder()
    handler = fail_then_reply(1, error(429, "rate limited", retry_after=7), reply("ok"))
    with ScriptedServer(handler) as srv:
        async with make_engine(sleep=sleep) as engine:
            c = await engine.complete(claude(srv), user_request())
        assert srv.count == 2
    assert c.text == "ok"
    assert sleep.delays == [7.0]


async def test_529_overloaded_is_retried_then_succeeds() -> None:
    sleep = SleepRecorder()
    handler = fail_then_reply(2, error(529, "Overloaded"), reply("fine"))
    with ScriptedServer(handler) as srv:
        async with make_engine(sleep=sleep) as engine:
            c = await engine.complete(claude(srv), user_request())
        assert srv.count == 3
    assert c.text == "fine"
    assert len(sleep.delays) == 2


async def test_persistent_529_gives_up_after_max_attempts() -> None:
    sleep = SleepRecorder()
    with ScriptedServer(constant(error(529, "Overloaded", retry_after=2))) as srv:
        async with make_engine(sleep=sleep) as engine:
            with pytest.raises(ProviderUnavailableError, match="overloaded"):
                await engine.complete(claude(srv), user_request())
        assert srv.count == 3  # make_engine's policy: 3 attempts, and the SDK adds none
    assert sleep.delays == [2.0, 2.0]


async def test_401_is_not_retried_and_names_the_key_variable() -> None:
    sleep = SleepRecorder()
    with ScriptedServer(constant(error(401, "invalid x-api-key"))) as srv:
        async with make_engine(sleep=sleep) as engine:
            with pytest.raises(AuthError) as caught:
                await engine.complete(claude(srv), user_request())
        assert srv.count == 1
    assert sleep.delays == []
    assert caught.value.hint is not None and "ANTHROPIC_API_KEY" in caught.value.hint
    assert "\n" not in str(caught.value)


async def test_400_is_not_retried() -> None:
    sleep = SleepRecorder()
    with ScriptedServer(constant(error(400, "messages: roles must alternate"))) as srv:
        async with make_engine(sleep=sleep) as engine:
            with pytest.raises(BadRequestError) as caught:
                await engine.complete(claude(srv), user_request())
        assert srv.count == 1
    assert sleep.delays == []
    assert not isinstance(caught.value, ContextLengthError)
    assert "roles must alternate" in str(caught.value)


async def test_prompt_too_long_is_a_context_length_error() -> None:
    too_long = error(400, "prompt is too long: 210000 tokens > 200000 maximum")
    with ScriptedServer(constant(too_long)) as srv:
        async with make_engine() as engine:
            with pytest.raises(ContextLengthError, match="prompt is too long"):
                await engine.complete(claude(srv), user_request())
        assert srv.count == 1


def test_missing_key_at_the_default_endpoint_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(MissingKeyError) as caught:
        check_keys([resolve_model(SPEC)])
    assert caught.value.env_var == "ANTHROPIC_API_KEY"
    assert "ANTHROPIC_API_KEY" in str(caught.value)


def test_no_key_needed_at_a_custom_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    check_keys([resolve_model(SPEC, base_url="http://127.0.0.1:9/v1")])  # does not raise
    monkeypatch.setenv("ANTHROPIC_API_KEY", DUMMY_KEY)
    check_keys([resolve_model(SPEC)])


# ---- the scripted route itself, seen by the SDK without Assay in between


def test_scripted_route_streams_anthropic_events() -> None:
    with ScriptedServer(constant(reply("one two three", input_tokens=4))) as srv:
        client = anthropic.Anthropic(api_key="x", base_url=f"http://127.0.0.1:{srv.port}")
        with client.messages.stream(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
        ) as events:
            pieces = list(events.text_stream)
            final = events.get_final_message()
    assert pieces == ["one ", "two ", "three"]
    assert final.content[0].text == "one two three"  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 3)
    assert final.stop_reason == "end_turn"


def test_scripted_route_errors_use_anthropic_bodies_and_retry_after() -> None:
    with ScriptedServer(constant(error(529, "Overloaded", retry_after=3))) as srv:
        answer = httpx.post(
            f"http://127.0.0.1:{srv.port}/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
    assert answer.status_code == 529
    assert answer.headers["retry-after"] == "3"
    assert answer.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
