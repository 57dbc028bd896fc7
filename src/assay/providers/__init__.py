"""Providers: one contract (``complete``), one factory, model specs resolved in one place."""

from __future__ import annotations

from assay.providers.base import Provider
from assay.providers.specs import PROVIDERS, resolve_model
from assay.records import ModelConfig


def make_provider(
    model: ModelConfig, *, timeout_s: float, max_connections: int, local_parallel: int
) -> Provider:
    """Build the provider for a resolved model. Vendor SDKs are imported here, lazily."""
    kind = PROVIDERS[model.provider].kind
    if kind == "local":
        from assay.providers.local import LocalProvider

        return LocalProvider(model, n_parallel=local_parallel)
    if kind == "anthropic":
        from assay.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(model, timeout_s=timeout_s, max_connections=max_connections)
    from assay.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(model, timeout_s=timeout_s, max_connections=max_connections)


__all__ = ["PROVIDERS", "ModelConfig", "Provider", "make_provider", "resolve_model"]
