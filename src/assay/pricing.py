"""Prices per model and the cost of a call.

Every figure carries its source and date. A model with no known price costs "unknown"
(``None``), never $0; the only $0 is a local model, which has no API to pay for.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from assay.errors import UserInputError
from assay.files import read_regular_text
from assay.providers.specs import PROVIDERS
from assay.records import ModelConfig, Price

LOCAL_PRICE = Price(input_per_mtok=0.0, output_per_mtok=0.0, source="local model: no API cost")

_BUNDLED_NAME = "prices.json"
_REQUIRED = ("input_per_mtok", "output_per_mtok")
_OPTIONAL = ("source", "as_of", "batch_discount")
# Snapshot suffixes: OpenAI "-2024-07-18", Anthropic "-20250219".
_DATED_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_ALIAS_SUFFIX = "-latest"
_FREE_SUFFIX = ":free"
_ENTRY_HINT = "each entry needs input_per_mtok and output_per_mtok in USD per million tokens"


class PriceTable:
    """An immutable mapping of model spec (``provider/model``) to Price."""

    def __init__(
        self,
        prices: Mapping[str, Price] | None = None,
        note: str = "",
        batch_discounts: Mapping[str, float] | None = None,
    ) -> None:
        """``batch_discounts``: per provider, the share of the price its batch API takes off,
        for every price of its models that states none of its own."""
        self._prices: dict[str, Price] = dict(prices or {})
        self._by_lower: dict[str, str] = {spec.lower(): spec for spec in self._prices}
        self.note = note
        self.batch_discounts: dict[str, float] = dict(batch_discounts or {})

    @classmethod
    def bundled(cls) -> PriceTable:
        """The table shipped with Assay (list prices with source and date)."""
        prices, note, discounts = _bundled()
        return cls(prices, note, discounts)

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        """A user price file: JSON, YAML or TOML, ``{"prices": {...}}`` or a top-level mapping."""
        path = Path(path)
        data = _read_mapping(path)
        entries, note = _split_document(data, path)
        prices = {key: parse_price(entry, origin=str(path), key=key) for key, entry in entries}
        return cls(prices, note, _batch_discounts(data.get("batch_discounts"), str(path)))

    def merged(self, other: PriceTable) -> PriceTable:
        """A new table with ``other``'s entries added; on the same model, ``other`` wins."""
        own = {s: p for s, p in self._prices.items() if s.lower() not in other._by_lower}
        discounts = {**self.batch_discounts, **other.batch_discounts}
        return PriceTable({**own, **other._prices}, self.note or other.note, discounts)

    def lookup(self, model: ModelConfig) -> Price | None:
        """Per-model override > local ($0) > exact spec > spec without a dated suffix > None;
        with the provider's batch discount where the price states none."""
        if model.is_local and model.price is None:
            return LOCAL_PRICE
        found = model.price or self.get(f"{model.provider}/{model.model}")
        if found is None and model.provider == "openrouter":
            return _openrouter_free(model.model)
        return self._with_batch_discount(model.provider, found)

    def _with_batch_discount(self, provider: str, price: Price | None) -> Price | None:
        discount = self.batch_discounts.get(provider)
        if price is None or price.batch_discount is not None or discount is None:
            return price
        return price.model_copy(update={"batch_discount": discount})

    def get(self, spec: str) -> Price | None:
        """The table's price for a spec, matched without case, then without a dated suffix."""
        for candidate in _candidates(spec.strip()):
            key = self._by_lower.get(candidate.lower())
            if key is not None:
                return self._prices[key]
        return None

    def entries(self) -> Iterator[tuple[str, Price]]:
        """``(spec, price)`` pairs sorted by spec, for display (batch discounts applied)."""
        for spec, price in sorted(self._prices.items(), key=lambda item: item[0].lower()):
            yield spec, self._with_batch_discount(spec.partition("/")[0], price) or price

    def __contains__(self, spec: object) -> bool:
        return isinstance(spec, str) and spec.lower() in self._by_lower


def cost_usd(
    price: Price | None, input_tokens: int | None, output_tokens: int | None
) -> float | None:
    """Dollars for one call; ``None`` when the price or the usage is unknown.

    Reasoning tokens are billed as output: pass them inside ``output_tokens`` (as OpenAI's
    ``completion_tokens`` already does), never added a second time.
    """
    if price is None or input_tokens is None or output_tokens is None:
        return None
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got {input_tokens} and {output_tokens}")
    total = input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok
    return total / 1_000_000


def pin_price(model: ModelConfig, table: PriceTable) -> ModelConfig:
    """The model with the price it is charged at now written into it, so that a run stored
    with it is charged the same on resume, whatever price table the resume is given."""
    price = table.lookup(model)
    return (
        model
        if price is None or model.price is not None
        else model.model_copy(update={"price": price})
    )


def load_price_table(override: str | Path | None = None) -> PriceTable:
    """The bundled table, with a user's ``--prices FILE`` on top when given."""
    table = PriceTable.bundled()
    return table if override is None else table.merged(PriceTable.load(override))


def parse_price(entry: object, *, origin: str, key: str) -> Price:
    """Validate one price entry; ``origin`` (a file) names the problem and is the default source."""
    where = f"{origin}: price for {key!r}"
    if not isinstance(entry, Mapping):
        raise UserInputError(f"{where} is not a mapping", _ENTRY_HINT)
    unknown = sorted(str(k) for k in entry if k not in _REQUIRED + _OPTIONAL)
    if unknown:
        allowed = ", ".join(_REQUIRED + _OPTIONAL)
        raise UserInputError(f"{where} has unknown field(s) {', '.join(unknown)}", f"use {allowed}")
    values = [_rate(entry, name, where) for name in _REQUIRED]
    return Price(
        input_per_mtok=values[0],
        output_per_mtok=values[1],
        source=_text(entry.get("source"), "source", where) or origin,
        as_of=_text(entry.get("as_of"), "as_of", where),
        batch_discount=_discount(entry, where),
    )


def batch_price(price: Price | None) -> Price | None:
    """What a call through the provider's batch API costs: the price less its batch discount
    (the standard price where no discount is known)."""
    if price is None or not price.batch_discount:
        return price
    keep = 1.0 - price.batch_discount
    return price.model_copy(
        update={
            "input_per_mtok": price.input_per_mtok * keep,
            "output_per_mtok": price.output_per_mtok * keep,
            "batch_discount": None,  # applied: never twice
        }
    )


def _discount(entry: Mapping[str, Any], where: str) -> float | None:
    if entry.get("batch_discount") is None:
        return None
    value = _rate(entry, "batch_discount", where)
    if value > 1:
        raise UserInputError(
            f"{where}: batch_discount must be a share of the price, got {value!r}",
            "e.g. batch_discount: 0.5 for half price",
        )
    return value


def _candidates(spec: str) -> list[str]:
    """The spec, then without a dated snapshot suffix, then without ``-latest``."""
    out = [spec]
    undated = _DATED_SUFFIX.sub("", spec)
    if undated != spec:
        out.append(undated)
    if spec.endswith(_ALIAS_SUFFIX):
        out.append(spec.removesuffix(_ALIAS_SUFFIX))
    return out


def _openrouter_free(model: str) -> Price | None:
    """OpenRouter's ``:free`` variants are billed at $0 (rate-limited, but free)."""
    if not model.endswith(_FREE_SUFFIX):
        return None
    source = f"https://openrouter.ai/{model} (:free variant, no charge)"
    return Price(input_per_mtok=0.0, output_per_mtok=0.0, source=source)


def _rate(entry: Mapping[str, Any], name: str, where: str) -> float:
    if name not in entry:
        raise UserInputError(f"{where} is missing {name}", _ENTRY_HINT)
    value = entry[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserInputError(f"{where}: {name} must be a number, got {value!r}", _ENTRY_HINT)
    if not math.isfinite(value) or value < 0:
        raise UserInputError(f"{where}: {name} must be >= 0, got {value!r}", _ENTRY_HINT)
    return float(value)


def _text(value: object, name: str, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):  # YAML and TOML parse bare dates
        return value.isoformat()
    if not isinstance(value, str):
        raise UserInputError(f"{where}: {name} must be text, got {value!r}")
    return value.strip()


def _read_mapping(path: Path) -> dict[str, Any]:
    parse = _parser_for(path)
    try:
        text = read_regular_text(path)
    except FileNotFoundError:
        raise UserInputError(f"Price file not found: {path}", "check the --prices path") from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise UserInputError(f"Cannot read price file {path}: {exc}") from None
    try:
        data = parse(text)
    except (ValueError, yaml.YAMLError) as exc:  # JSON and TOML errors are ValueErrors
        problem = " ".join(str(exc).split())
        raise UserInputError(f"{path}: not valid {_kind(path)}: {problem}") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a mapping of model spec to price", _ENTRY_HINT)
    return data


def _kind(path: Path) -> str:
    return {".json": "JSON", ".toml": "TOML"}.get(path.suffix.lower(), "YAML")


def _parser_for(path: Path) -> Callable[[str], Any]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json.loads
    if suffix in (".yaml", ".yml"):
        return _load_yaml
    if suffix == ".toml":
        return tomllib.loads
    raise UserInputError(
        f"{path}: unsupported price file type {suffix or '(none)'!r}", "use .json, .yaml or .toml"
    )


def _load_yaml(text: str) -> Any:
    return yaml.safe_load(text)


def _split_document(data: dict[str, Any], path: Path) -> tuple[list[tuple[str, Any]], str]:
    """Entries and note from ``{"note", "prices": {...}}`` or a top-level mapping."""
    note = _text(data.get("note"), "note", str(path))
    meta = ("note", "batch_discounts")
    body = data["prices"] if "prices" in data else {k: v for k, v in data.items() if k not in meta}
    if not isinstance(body, dict):
        raise UserInputError(f"{path}: 'prices' must be a mapping of model spec to price")
    for key in body:
        _check_spec(str(key), path)
    return [(str(k), v) for k, v in body.items()], note


def _check_spec(key: str, path: Path) -> None:
    provider, sep, model = key.partition("/")
    if not sep or not model or provider not in PROVIDERS:
        raise UserInputError(
            f"{path}: price key {key!r} is not a provider/model spec",
            f"e.g. openai/gpt-4o-mini; providers: {', '.join(PROVIDERS)}",
        )


@functools.cache
def _bundled() -> tuple[dict[str, Price], str, dict[str, float]]:
    text = resources.files("assay").joinpath(_BUNDLED_NAME).read_text(encoding="utf-8")
    data = json.loads(text)
    origin = f"bundled {_BUNDLED_NAME}"
    prices = {key: parse_price(e, origin=origin, key=key) for key, e in data["prices"].items()}
    discounts = _batch_discounts(data.get("batch_discounts"), origin)
    return prices, str(data.get("note", "")), discounts


def _batch_discounts(raw: object, origin: str) -> dict[str, float]:
    """``batch_discounts: {provider: 0.5}`` (or ``{provider: {discount: 0.5, source: ...}}``)."""
    if raw is None:
        return {}
    hint = "write batch_discounts: {openai: 0.5} (the share of the price taken off)"
    if not isinstance(raw, Mapping):
        raise UserInputError(f"{origin}: batch_discounts must be a mapping", hint)
    out = {}
    for provider, value in raw.items():
        if provider not in PROVIDERS:
            raise UserInputError(f"{origin}: batch_discounts: unknown provider {provider!r}", hint)
        entry = value if isinstance(value, Mapping) else {"batch_discount": value}
        amount = _discount(
            {"batch_discount": entry.get("discount", entry.get("batch_discount"))},
            f"{origin}: batch_discounts.{provider}",
        )
        if amount is None:
            raise UserInputError(f"{origin}: batch_discounts.{provider} has no discount", hint)
        out[str(provider)] = amount
    return out
