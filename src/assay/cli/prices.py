"""``assay prices``: show the price table, filtered by a substring of the model spec."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from assay.pricing import PriceTable
from assay.records import Price


def prices_table(table: PriceTable, pattern: str | None = None) -> Table:
    """A rich table of the prices whose spec contains ``pattern`` (case-insensitive)."""
    rows = _matching(table, pattern)
    out = Table(title="Prices (USD per million tokens)", caption=_caption(pattern, rows))
    out.add_column("model", no_wrap=True)
    out.add_column("input $/Mtok", justify="right")
    out.add_column("output $/Mtok", justify="right")
    out.add_column("batch", justify="right")
    out.add_column("source", overflow="fold")
    out.add_column("as of", no_wrap=True)
    for spec, price in rows:
        out.add_row(
            spec,
            _money(price.input_per_mtok),
            _money(price.output_per_mtok),
            batch_discount_text(price),
            price.source,
            price.as_of or "-",
        )
    return out


def prices_json(table: PriceTable, pattern: str | None = None) -> list[dict[str, Any]]:
    """The same rows as ``prices_table``, as plain dicts for ``--json``."""
    return [
        {"model": spec, **price.model_dump(exclude_none=True)}
        for spec, price in _matching(table, pattern)
    ]


def batch_discount_text(price: Price | None) -> str:
    """``-50%`` for a batch API at half price; ``-`` where no batch discount is known."""
    if price is None or not price.batch_discount:
        return "-"
    return f"-{price.batch_discount * 100:.0f}%"


def _matching(table: PriceTable, pattern: str | None) -> list[tuple[str, Price]]:
    needle = (pattern or "").strip().lower()
    return [(spec, price) for spec, price in table.entries() if needle in spec.lower()]


def _caption(pattern: str | None, rows: list[tuple[str, Price]]) -> str:
    if not rows and pattern:
        return f"No model matches {pattern!r}; add your own with --prices FILE."
    return "List prices as copied on the 'as of' date; override with --prices FILE."


def _money(value: float) -> str:
    """0.15 -> 0.15, 2.5 -> 2.50, 0.075 -> 0.075, 10 -> 10.00 (no binary-float noise)."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"
