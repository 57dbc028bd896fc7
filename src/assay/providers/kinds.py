"""Provider kinds: how a provider is reached. Each ``PROVIDERS`` entry names one kind.

Factories import their module on first use, so importing this registry (and so
``assay.providers``) loads no vendor SDK.
"""

from __future__ import annotations

from dataclasses import dataclass

from assay.providers.base import Provider, ProviderFactory
from assay.records import ModelConfig


@dataclass(frozen=True)
class ProviderKind:
    name: str
    help: str  # one line, for listings and error hints
    factory: ProviderFactory


def _openai(
    model: ModelConfig, *, timeout_s: float, max_connections: int, local_parallel: int
) -> Provider:
    from assay.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(model, timeout_s=timeout_s, max_connections=max_connections)


def _anthropic(
    model: ModelConfig, *, timeout_s: float, max_connections: int, local_parallel: int
) -> Provider:
    from assay.providers.anthropic_provider import AnthropicProvider

    return AnthropicProvider(model, timeout_s=timeout_s, max_connections=max_connections)


def _local(
    model: ModelConfig, *, timeout_s: float, max_connections: int, local_parallel: int
) -> Provider:
    from assay.providers.local import LocalProvider

    return LocalProvider(model, n_parallel=local_parallel)


KINDS: dict[str, ProviderKind] = {
    k.name: k
    for k in (
        ProviderKind("openai", "OpenAI-compatible chat completions over HTTP", _openai),
        ProviderKind("anthropic", "Anthropic Messages API through the anthropic SDK", _anthropic),
        ProviderKind("local", "GGUF model in-process through llama.cpp (xllamacpp)", _local),
    )
}


def provider_kind(name: str) -> ProviderKind:
    try:
        return KINDS[name]
    except KeyError:
        # Kinds are named in code (PROVIDERS), so a miss is a bug, not bad user input.
        raise LookupError(
            f"Unknown provider kind {name!r}; registered kinds: {', '.join(KINDS)}"
        ) from None
