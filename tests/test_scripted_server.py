"""The scripted OpenAI-compatible server, exercised with the real openai SDK and httpx."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from assay.testing import (
    Action,
    ChatRequest,
    ScriptedServer,
    attempt_key_of,
    by_content,
    constant,
    echo,
    error,
    fail_then_reply,
    hang,
    no_choices,
    raw,
    reply,
    reset,
    sequence,
    stream,
)

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "say hi please"},
]
BODY = {"model": "m", "messages": MESSAGES}


ClientFactory = Callable[..., openai.OpenAI]


@pytest.fixture
def client_for() -> Iterator[ClientFactory]:
    """Makes SDK clients for a server (no SDK retries unless asked) and closes them afterwards."""
    clients: list[openai.OpenAI] = []

    def make(srv: ScriptedServer, timeout: float = 10.0, max_retries: int = 0) -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=srv.base_url, api_key="x", max_retries=max_retries, timeout=timeout
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def chat(client: openai.OpenAI, content: str = "say hi please") -> str | None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": content}]
    completion = client.chat.completions.create(model="m", messages=messages)
    return completion.choices[0].message.content


# ---------------------------------------------------------------- replies


def test_reply_text_model_and_usage(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(reply("hello there friend"))) as srv:
        completion = client_for(srv).chat.completions.create(
            model="gpt-x",
            messages=MESSAGES,
        )
    assert completion.choices[0].message.content == "hello there friend"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-x"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 5  # "be brief" + "say hi please"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 8


def test_base_url_while_running() -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
    with pytest.raises(RuntimeError):
        _ = srv.base_url


def test_reply_explicit_usage_model_and_finish_reason(client_for: ClientFactory) -> None:
    action = reply("cut", input_tokens=100, output_tokens=7, model="served", finish_reason="length")
    with ScriptedServer(constant(action)) as srv:
        completion = client_for(srv).chat.completions.create(model="asked", messages=MESSAGES)
    assert completion.model == "served"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (100, 7)


def test_reply_without_usage() -> None:
    with ScriptedServer(constant(reply("x", usage=False))) as srv:
        payload = httpx.post(f"{srv.base_url}/chat/completions", json=BODY).json()
    assert "usage" not in payload
    assert payload["choices"][0]["message"] == {"role": "assistant", "content": "x"}


async def test_async_client_and_async_handler() -> None:
    async def handler(request: ChatRequest) -> Action:
        await asyncio.sleep(0.01)
        return reply(f"you said: {request.last_user_text}")

    with ScriptedServer(handler) as srv:
        async with openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0) as client:
            completion = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "you said: say hi please"


def test_reply_delay_is_applied(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(reply("x", delay=0.2))) as srv:
        start = time.perf_counter()
        chat(client_for(srv))
        assert time.perf_counter() - start >= 0.2


def test_models_endpoint(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(reply("x")), models=("a", "b")) as srv:
        ids = [m.id for m in client_for(srv).models.list()]
    assert ids == ["a", "b"]


# ---------------------------------------------------------------- errors


def test_error_status_json_and_retry_after_header(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(error(429, "slow down", retry_after=2))) as srv:
        response = httpx.post(f"{srv.base_url}/chat/completions", json=BODY)
        with pytest.raises(openai.RateLimitError) as caught:
            chat(client_for(srv))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": None}
    }
    assert caught.value.response.headers["retry-after"] == "2"


def test_fractional_retry_after_and_extra_headers() -> None:
    action = error(503, retry_after=0.5, headers={"retry-after-ms": "500"})
    with ScriptedServer(constant(action)) as srv:
        response = httpx.post(f"{srv.base_url}/chat/completions", json=BODY)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "0.5"
    assert response.headers["retry-after-ms"] == "500"
    assert response.json()["error"]["type"] == "server_error"


def test_context_length_error_code_reaches_the_sdk(client_for: ClientFactory) -> None:
    action = error(400, "too long", code="context_length_exceeded")
    with ScriptedServer(constant(action)) as srv, pytest.raises(openai.BadRequestError) as caught:
        chat(client_for(srv))
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (500, openai.InternalServerError),
    ],
)
def test_error_statuses_map_to_sdk_exceptions(
    status: int, exc_type: type[Exception], client_for: ClientFactory
) -> None:
    with ScriptedServer(constant(error(status))) as srv, pytest.raises(exc_type):
        chat(client_for(srv))


def test_error_with_custom_body() -> None:
    with ScriptedServer(constant(error(502, body={"detail": "upstream"}))) as srv:
        response = httpx.post(f"{srv.base_url}/chat/completions", json=BODY)
    assert (response.status_code, response.json()) == (502, {"detail": "upstream"})


# ---------------------------------------------------------------- faults


def test_hang_trips_the_client_timeout_and_stop_is_prompt(client_for: ClientFactory) -> None:
    srv = ScriptedServer(constant(hang(30))).start()
    try:
        with pytest.raises(openai.APITimeoutError):
            chat(client_for(srv, timeout=0.3))
    finally:
        start = time.perf_counter()
        srv.stop()
    assert time.perf_counter() - start < 2


def test_hang_then_closes_the_connection() -> None:
    with ScriptedServer(constant(hang(0.1))) as srv, pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{srv.base_url}/chat/completions", json=BODY, timeout=5)


def test_reset_is_a_connection_error(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(reset())) as srv:
        with pytest.raises(openai.APIConnectionError):
            chat(client_for(srv))
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{srv.base_url}/chat/completions", json=BODY)
    assert srv.count == 2


def test_raw_garbage_body_is_sent_verbatim(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(raw(200, b"{not json"))) as srv:
        response = httpx.post(f"{srv.base_url}/chat/completions", json=BODY)
        with pytest.raises((openai.APIError, json.JSONDecodeError, ValueError)):
            chat(client_for(srv))
    assert response.status_code == 200
    assert response.content == b"{not json"
    assert response.headers["content-type"] == "application/json"


def test_raw_non_json_content_type(client_for: ClientFactory) -> None:
    page = raw(502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"})
    with ScriptedServer(constant(page)) as srv:
        response = httpx.post(f"{srv.base_url}/chat/completions", json=BODY)
        with pytest.raises(openai.InternalServerError):
            chat(client_for(srv))
    assert response.text == "<html>Bad Gateway</html>"
    assert response.headers["content-type"] == "text/html"


def test_raw_truncated_body() -> None:
    truncated = raw(200, b'{"id": "x", "cho', {"Content-Length": "500"})
    with ScriptedServer(constant(truncated)) as srv, pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{srv.base_url}/chat/completions", json=BODY)


def test_no_choices(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(no_choices())) as srv:
        completion = client_for(srv).chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices == []
    assert completion.usage is not None and completion.usage.completion_tokens == 0


# ---------------------------------------------------------------- streaming


def test_slow_stream_delivers_words_over_time(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(stream("one two three four", chunk_delay=0.05))) as srv:
        client = client_for(srv)
        start = time.perf_counter()
        chunks = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        elapsed = time.perf_counter() - start
    assert "".join(pieces) == "one two three four"
    assert elapsed >= 0.2


def test_reply_is_streamed_when_the_client_asks_with_usage(client_for: ClientFactory) -> None:
    with ScriptedServer(constant(reply("a b c"))) as srv:
        chunks = list(
            client_for(srv).chat.completions.create(
                model="m",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


# ---------------------------------------------------------------- concurrency and HTTP


async def test_200_concurrent_delayed_requests_overlap() -> None:
    with ScriptedServer(constant(reply("ok", delay=0.1))) as srv:
        async with openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0) as client:
            start = time.perf_counter()
            results = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    for i in range(200)
                )
            )
            elapsed = time.perf_counter() - start
    assert [r.choices[0].message.content for r in results] == ["ok"] * 200
    assert srv.count == 200
    assert elapsed < 3.0


def test_keep_alive_reuses_one_connection() -> None:
    with ScriptedServer(constant(reply("x"))) as srv, httpx.Client() as client:
        for _ in range(5):
            response = client.post(f"{srv.base_url}/chat/completions", json=BODY)
            assert response.headers["connection"] == "keep-alive"
    assert {r.connection for r in srv.requests} == {srv.requests[0].connection}


def test_connection_close_is_honoured() -> None:
    with ScriptedServer(constant(reply("x"))) as srv, httpx.Client() as client:
        for _ in range(3):
            response = client.post(
                f"{srv.base_url}/chat/completions", json=BODY, headers={"Connection": "close"}
            )
            assert response.headers["connection"] == "close"
    assert len({r.connection for r in srv.requests}) == 3


def test_chunked_request_body_is_read() -> None:
    def body() -> Iterator[bytes]:
        yield json.dumps(BODY).encode()

    with ScriptedServer(echo()) as srv:
        response = httpx.post(f"{srv.base_url}/chat/completions", content=body())
    assert response.json()["choices"][0]["message"]["content"] == "say hi please"
    assert srv.requests[0].headers["transfer-encoding"] == "chunked"


def test_bad_json_unknown_route_and_malformed_http() -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        bad_json = httpx.post(f"{srv.base_url}/chat/completions", content=b"{nope")
        unknown = httpx.get(f"{srv.base_url}/embeddings")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            answer = sock.recv(1024)
    assert bad_json.status_code == 400
    assert unknown.status_code == 404
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert srv.count == 0


def test_handler_exception_becomes_500_and_is_recorded(client_for: ClientFactory) -> None:
    def broken(request: ChatRequest) -> Action:
        raise KeyError("oops")

    with ScriptedServer(broken) as srv, pytest.raises(openai.InternalServerError):
        chat(client_for(srv))
    assert len(srv.handler_errors) == 1 and isinstance(srv.handler_errors[0], KeyError)


# ---------------------------------------------------------------- log and scripts


def test_request_log_and_count_for() -> None:
    with ScriptedServer(constant(reply("x"))) as srv:
        for _ in range(3):
            httpx.post(f"{srv.base_url}/chat/completions", json=BODY, headers={"X-Tag": "t"})
        httpx.post(f"{srv.base_url}/chat/completions", json={**BODY, "temperature": 0})
        log = srv.requests
        assert srv.count == 4
        assert [r.index for r in log] == [0, 1, 2, 3]
        assert srv.count_for(attempt_key_of(BODY)) == 3
        assert log[0].attempt_key == log[2].attempt_key != log[3].attempt_key
        assert log[0].model == "m" and log[0].messages == MESSAGES
        assert log[0].headers["x-tag"] == "t"
        srv.reset_log()
        assert srv.count == 0 and srv.count_for(attempt_key_of(BODY)) == 0
        httpx.post(f"{srv.base_url}/chat/completions", json=BODY)
        assert srv.requests[0].index == 0


def test_attempt_key_ignores_key_order() -> None:
    reordered = {"messages": MESSAGES, "model": "m"}
    assert attempt_key_of(BODY) == attempt_key_of(reordered)


def test_fail_then_reply_is_counted_per_request_body() -> None:
    script = fail_then_reply(2, error(503), reply("finally"))
    with ScriptedServer(script) as srv, httpx.Client() as client:

        def post(content: str) -> httpx.Response:
            body = {"model": "m", "messages": [{"role": "user", "content": content}]}
            return client.post(f"{srv.base_url}/chat/completions", json=body)

        first = [post("a").status_code for _ in range(3)]
        other = post("b").status_code
    assert first == [503, 503, 200]
    assert other == 503  # a different body has its own count


def test_fail_then_reply_with_sdk_retries(client_for: ClientFactory) -> None:
    script = fail_then_reply(2, error(429, retry_after=0.01))
    with ScriptedServer(script) as srv:
        client = client_for(srv, max_retries=2)
        assert chat(client) == "ok"
    assert srv.count == 3
    assert srv.count_for(srv.requests[0].attempt_key) == 3


def test_sequence_global_and_then(client_for: ClientFactory) -> None:
    script = sequence(error(500), reply("second"), then=reply("rest"))
    with ScriptedServer(script) as srv:
        client = client_for(srv)
        with pytest.raises(openai.InternalServerError):
            chat(client, "a")
        assert [chat(client, c) for c in ("b", "c", "d")] == ["second", "rest", "rest"]


def test_sequence_repeats_last_action_by_default(client_for: ClientFactory) -> None:
    with ScriptedServer(sequence(reply("1"), reply("2"))) as srv:
        client = client_for(srv)
        assert [chat(client) for _ in range(4)] == ["1", "2", "2", "2"]


def test_sequence_needs_an_action() -> None:
    with pytest.raises(ValueError):
        sequence()


def test_by_content_routes_on_last_user_message(client_for: ClientFactory) -> None:
    def route(text: str) -> Action:
        return error(400, code="context_length_exceeded") if "long" in text else reply("short")

    with ScriptedServer(by_content(route)) as srv:
        client = client_for(srv)
        assert chat(client, "a short one") == "short"
        with pytest.raises(openai.BadRequestError):
            chat(client, "a long one")


def test_echo_and_multipart_content() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "part one"}]}],
    }
    with ScriptedServer(echo(prefix="> ")) as srv:
        payload = httpx.post(f"{srv.base_url}/chat/completions", json=body).json()
    assert payload["choices"][0]["message"]["content"] == "> part one"
    assert payload["usage"]["prompt_tokens"] == 2
