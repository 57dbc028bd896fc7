"""Number formats shared by every table and chart, so the report reads like ``assay show``."""

from __future__ import annotations

import time

from assay.scoring.stats import Aggregate

DASH = "–"


def score(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def ci(agg: Aggregate | None) -> str:
    if agg is None or agg.ci_low is None or agg.ci_high is None:
        return ""
    return f"[{agg.ci_low:.3f}, {agg.ci_high:.3f}]"


def signed(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:+.{digits}f}"


def usd(value: float | None, digits: int = 4) -> str:
    """Dollars; an unknown price is "unknown", never $0 (design rule 7)."""
    return "unknown" if value is None else f"${value:,.{digits}f}"


def usd_tick(value: float) -> str:
    """An axis tick: as few digits as the value needs ($0.005, $0.02, $1.5, $1,000)."""
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return "$" + text


def ms(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}"


def number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def p_value(value: float | None) -> str:
    return DASH if value is None else f"{value:.3g}"


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
