"""The models config file (YAML, JSON or TOML): spec, label, base_url, key env var, price."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay.errors import UserInputError
from assay.files import NotRegularFileError, open_regular
from assay.pricing import parse_price
from assay.providers.specs import resolve_model
from assay.records import ModelConfig


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str
    label: str | None = None
    base_url: str | list[str] | None = None  # a list: replicas of one model, calls spread over them
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    price: dict[str, Any] | None = None  # checked by the price table's own rules
    batch: bool = False  # send this model's requests through its provider's batch API


def load_models_config(path: str | Path) -> list[ModelConfig]:
    """``models: [{spec: openai/gpt-4o-mini, label: mini, price: {...}}, ...]``."""
    p = Path(path)
    data = _parse(p)
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise UserInputError(f"{p}: no models found", "write a list under the key 'models'")
    return [_entry(p, i, raw) for i, raw in enumerate(entries, start=1)]


DECISION_KEYS = ("margin", "baseline", "adaptive")


def load_decision_keys(path: str | Path) -> dict[str, Any]:
    """The decision settings a models config may carry beside its models (``margin: 0.05``,
    ``baseline: LABEL``, ``adaptive: true``); the flags of the same name win over them."""
    data = _parse(Path(path))
    if not isinstance(data, dict):
        return {}
    return {key: data[key] for key in DECISION_KEYS if key in data}


MAX_CONFIG_BYTES = 1 << 20  # a models config is a few lines; a bigger file is a wrong path


def _parse(p: Path) -> Any:
    text = _read_text(p)
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # each parser has its own error type
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(f"{p}: not valid {p.suffix.lstrip('.') or 'JSON'} ({first})") from None
    _refuse_lone_surrogates(p, data)
    return data


def _refuse_lone_surrogates(p: Path, data: Any) -> None:
    """An escaped half of an emoji (``"\\ud83d"``) parses to a string that can be neither
    stored nor printed: refuse it here, in one line, rather than fail when the run is saved."""
    try:
        json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:
        char = f"U+{ord(exc.object[exc.start]):04X}"
        raise UserInputError(
            f"{p}: holds half of an emoji (a lone surrogate, {char})",
            "write the character whole, or remove it",
        ) from None
    except RecursionError:
        raise UserInputError(f"{p}: nests too deep to be a models config") from None


def _read_text(p: Path) -> str:
    """The file as text; a FIFO, a device, a huge or a binary file is one clear error."""
    try:
        with open_regular(p) as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except NotRegularFileError as exc:
        raise UserInputError(
            f"Models config {p} is {exc.kind}", "give a YAML, JSON or TOML file"
        ) from None
    except OSError as exc:
        raise UserInputError(f"Cannot read models config {p}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UserInputError(
            f"Models config {p} is larger than 1 MiB", "is this the models config?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserInputError(
            f"{p}:{line}: models config is not UTF-8 text (byte 0x{data[exc.start]:02x})",
            "give a YAML, JSON or TOML file saved as UTF-8",
        ) from None


def _entry(p: Path, index: int, raw: Any) -> ModelConfig:
    where = f"{p}: model #{index}"
    try:
        entry = ModelEntry.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "entry"
        keys = ", ".join(ModelEntry.model_fields)
        raise UserInputError(f"{where}: {field}: {err['msg']}", f"allowed keys: {keys}") from None
    return model_from_entry(entry, str(p), where)


def model_from_entry(entry: ModelEntry, origin: str, where: str) -> ModelConfig:
    """A validated entry (of a models config or an eval file) as a resolved model; ``where``
    locates it in error messages."""
    price = parse_price(entry.price, origin=origin, key=where) if entry.price else None
    try:
        return resolve_model(
            entry.spec,
            base_url=entry.base_url,
            label=entry.label,
            api_key_env=entry.api_key_env,
            params=entry.params,
            price=price,
            batch=entry.batch,
        )
    except UserInputError as exc:
        raise UserInputError(f"{where} ({entry.spec}): {exc.message}", exc.hint) from None
