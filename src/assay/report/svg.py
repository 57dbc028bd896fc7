"""Axes and small SVG pieces for the charts: linear or log scales with readable ticks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from assay.report.html import Markup, el, void


@dataclass(frozen=True)
class Axis:
    """Maps data values in [lo, hi] to pixels in [px0, px1], linearly or on a log10 scale."""

    lo: float
    hi: float
    px0: float
    px1: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = self.lo, self.hi, value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(value, self.lo))
        t = 0.5 if hi == lo else (v - lo) / (hi - lo)
        return self.px0 + t * (self.px1 - self.px0)

    def ticks(self) -> list[float]:
        return log_ticks(self.lo, self.hi) if self.log else linear_ticks(self.lo, self.hi)


def linear_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(count)]


def log_ticks(lo: float, hi: float) -> list[float]:
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    multipliers = (1,) if len(decades) > 4 else (1, 2, 5)
    ticks = [m * 10.0**d for d in decades for m in multipliers]
    return [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]


def nice_log_range(values: list[float]) -> tuple[float, float]:
    lo, hi = math.log10(min(values)), math.log10(max(values))
    pad = max(0.15, (hi - lo) * 0.08)
    return 10 ** (lo - pad), 10 ** (hi + pad)


def f(value: float) -> str:
    """A pixel coordinate for an attribute."""
    return f"{value:.1f}"


def line(x1: float, y1: float, x2: float, y2: float, cls: str) -> Markup:
    return void("line", x1=f(x1), y1=f(y1), x2=f(x2), y2=f(y2), class_=cls)


def rect(x: float, y: float, width: float, height: float, cls: str) -> Markup:
    return void("rect", x=f(x), y=f(y), width=f(width), height=f(height), class_=cls)


def circle(cx: float, cy: float, r: float, cls: str) -> Markup:
    return void("circle", cx=f(cx), cy=f(cy), r=f(r), class_=cls)


def text(
    x: float, y: float, content: str, cls: str | None = None, anchor: str = "start", **kw: object
) -> Markup:
    return el("text", content, x=f(x), y=f(y), class_=cls, text_anchor=anchor, **kw)


def svg(width: int, height: int, label: str, parts: list[Markup]) -> Markup:
    return el(
        "svg",
        [el("title", label), *parts],
        class_="chart",
        viewBox=f"0 0 {width} {height}",
        role="img",
        aria_label=label,
        xmlns="http://www.w3.org/2000/svg",
    )
