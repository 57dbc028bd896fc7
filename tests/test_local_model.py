"""The embedded SmolLM2 model: in-process, over its OpenAI-compatible HTTP endpoint, in parallel."""

from __future__ import annotations

import asyncio

import pytest

from assay.engine.engine import Engine, EngineConfig
from assay.providers.local import LocalProvider
from assay.providers.specs import embedded_model_path, resolve_model
from tests.conftest import user_request

pytestmark = pytest.mark.model

SENTIMENT = "Is this review positive or negative? Answer with one word.\n\nI loved this film."


async def test_in_process_completion_reports_usage() -> None:
    model = resolve_model("local/smollm2")
    async with Engine(EngineConfig(use_cache=False)) as engine:
        c = await engine.complete(model, user_request(SENTIMENT, max_tokens=8))
        totals = engine.accounting.snapshot()[("task", "local/smollm2")]
    assert c.text.strip()
    assert c.input_tokens and c.input_tokens > 10
    assert c.output_tokens and 0 < c.output_tokens <= 8
    assert c.model_served.startswith("local/") and c.cost_usd == 0.0
    assert totals.calls == 1 and totals.output_tokens == c.output_tokens


async def test_http_endpoint_with_the_official_openai_client() -> None:
    import openai

    provider = LocalProvider(resolve_model("local/smollm2"), n_parallel=2)
    client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="none", max_retries=0)
    assert provider.base_url.startswith("http://127.0.0.1:")
    response = await client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": SENTIMENT}],
        max_tokens=8,
        temperature=0,
    )
    await client.close()
    await provider.aclose()
    assert response.choices[0].message.content
    assert response.usage is not None and response.usage.completion_tokens <= 8


async def test_concurrent_requests_all_complete_with_usage() -> None:
    model = resolve_model("local/smollm2")
    texts = [f"Say the number {n}." for n in range(8)]
    async with Engine(EngineConfig(use_cache=False, local_parallel=4)) as engine:
        done = await asyncio.gather(
            *(engine.complete(model, user_request(t, max_tokens=6)) for t in texts)
        )
        totals = engine.accounting.snapshot()[("task", "local/smollm2")]
    assert len(done) == 8 and all(c.output_tokens for c in done)
    assert totals.calls == 8
    assert totals.output_tokens == sum(c.output_tokens or 0 for c in done)


def test_embedded_model_file_ships_in_the_package() -> None:
    path = embedded_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_local_path_must_be_a_gguf_file(tmp_path: object) -> None:
    from assay.errors import UserInputError
    from assay.providers.specs import local_model_path

    with pytest.raises(UserInputError, match="GGUF file not found"):
        local_model_path(resolve_model("local//nowhere/model.gguf"))
    with pytest.raises(UserInputError, match="Unknown local model"):
        local_model_path(resolve_model("local/llama3"))
