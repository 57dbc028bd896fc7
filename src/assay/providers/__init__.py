"""Providers: one contract (``complete``), one factory, model specs resolved in one place."""

from __future__ import annotations

from assay.providers.base import Provider, ProviderFactory
from assay.providers.kinds import KINDS, ProviderKind, provider_kind
from assay.providers.specs import PROVIDERS, resolve_model
from assay.records import ModelConfig


def make_provider(
    model: ModelConfig, *, timeout_s: float, max_connections: int, local_parallel: int
) -> Provider:
    """Build the provider for a resolved model through its kind's factory."""
    kind = provider_kind(PROVIDERS[model.provider].kind)
    return kind.factory(
        model, timeout_s=timeout_s, max_connections=max_connections, local_parallel=local_parallel
    )


__all__ = [
    "KINDS",
    "PROVIDERS",
    "ModelConfig",
    "Provider",
    "ProviderFactory",
    "ProviderKind",
    "make_provider",
    "provider_kind",
    "resolve_model",
]
