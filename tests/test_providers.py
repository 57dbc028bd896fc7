"""The provider-kind registry: every provider's kind is registered and builds lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assay.providers import KINDS, make_provider, provider_kind
from assay.providers.anthropic_provider import AnthropicProvider
from assay.providers.openai_compat import OpenAICompatProvider
from assay.providers.specs import PROVIDERS, resolve_model


def test_every_provider_names_a_registered_kind() -> None:
    missing = {p.name: p.kind for p in PROVIDERS.values() if p.kind not in KINDS}
    assert not missing


def test_every_kind_has_one_line_help() -> None:
    for name, kind in KINDS.items():
        assert kind.name == name
        assert kind.help.strip() and "\n" not in kind.help


def test_unknown_kind_names_the_registered_ones() -> None:
    with pytest.raises(LookupError, match=r"'nope'.*openai"):
        provider_kind("nope")


@pytest.mark.parametrize(
    ("spec", "cls"),
    [("compat/m", OpenAICompatProvider), ("anthropic/claude-x", AnthropicProvider)],
)
async def test_make_provider_builds_the_kinds_provider(spec: str, cls: type) -> None:
    # A custom endpoint needs no key, and building a client makes no request.
    model = resolve_model(spec, base_url="http://127.0.0.1:9/v1")
    provider = make_provider(model, timeout_s=5.0, max_connections=2, local_parallel=1)
    try:
        assert isinstance(provider, cls)
    finally:
        await provider.aclose()


def test_importing_providers_loads_no_vendor_sdk() -> None:
    # A fresh interpreter: this test process has already imported the SDKs above.
    code = (
        "import sys, assay.providers; "
        "print(sorted(m for m in ('openai', 'anthropic', 'xllamacpp', 'httpx') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
