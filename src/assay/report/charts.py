"""Benchmark charts as inline SVG: cost against quality, and latency per model."""

from __future__ import annotations

from dataclasses import dataclass

from assay.analysis.results import RunReport
from assay.analysis.summary import VariantSummary
from assay.report import fmt
from assay.report.html import Markup, el, void
from assay.report.svg import (
    Axis,
    circle,
    f,
    line,
    linear_ticks,
    nice_log_range,
    rect,
    svg,
    text,
)
from assay.scoring.stats import percentile

W, H = 960, 460
LEFT, RIGHT, TOP, BOTTOM = 76, W - 28, 44, H - 60
ZONE = 64  # width of the "$0" and "unknown" bands beside a log cost axis
LOG_SPAN = 10.0  # positive costs this many times apart get a log axis


@dataclass(frozen=True)
class Point:
    name: str
    cost: float | None
    mean: float
    low: float
    high: float
    front: bool
    x: float = 0.0


# --- cost against quality --------------------------------------------------------------------


def cost_quality_chart(report: RunReport) -> Markup:
    points = _points(report)
    if not points:
        return el("p", "No model produced a score, so there is nothing to plot.", class_="muted")
    x_axis, zero_x, unknown_x = _cost_axis(points)
    placed = [_place(p, x_axis, zero_x, unknown_x) for p in points]
    y_axis = _score_axis(points)
    parts = [
        *_cost_frame(x_axis, y_axis, zero_x, unknown_x, report.primary_metric),
        _front_line(placed, y_axis),
        *(_error_bar(p, y_axis) for p in placed),
        *(_dot(p, y_axis) for p in placed),
        *_labels(placed, y_axis),
        *_legend(),
    ]
    label = f"Quality ({report.primary_metric}) against API cost per 1,000 requests"
    return svg(W, H, label, parts)


def _points(report: RunReport) -> list[Point]:
    out = []
    for v in report.variants:
        agg = v.score
        if agg is None or agg.mean is None:
            continue
        low = agg.ci_low if agg.ci_low is not None else agg.mean
        high = agg.ci_high if agg.ci_high is not None else agg.mean
        front = v.variant in report.pareto_quality_cost
        out.append(Point(v.variant, v.cost_per_1k_usd, agg.mean, low, high, front))
    return out


def _cost_axis(points: list[Point]) -> tuple[Axis, float | None, float | None]:
    """The main axis, and the x of the "$0" and "unknown" bands when they are needed."""
    known = [p.cost for p in points if p.cost is not None]
    positive = [c for c in known if c > 0]
    unknown_x = RIGHT - ZONE / 2 if len(known) < len(points) else None
    right = RIGHT - ZONE - 16 if unknown_x is not None else RIGHT - 12
    use_log = len(positive) >= 2 and max(positive) / min(positive) >= LOG_SPAN
    if use_log:
        zero_x = LEFT + ZONE / 2 if 0.0 in known else None
        left = LEFT + ZONE + 16 if zero_x is not None else LEFT + 12
        lo, hi = nice_log_range(positive)
        return Axis(lo, hi, left, right, log=True), zero_x, unknown_x
    top = max(positive, default=1.0) * 1.15
    return (
        Axis(0.0, linear_ticks(0.0, top)[-1] if positive else 1.0, LEFT + 12, right),
        None,
        unknown_x,
    )


def _place(p: Point, axis: Axis, zero_x: float | None, unknown_x: float | None) -> Point:
    if p.cost is None:
        x = unknown_x or RIGHT
    elif p.cost == 0 and zero_x is not None:
        x = zero_x
    else:
        x = axis(p.cost)
    return Point(p.name, p.cost, p.mean, p.low, p.high, p.front, x)


def _score_axis(points: list[Point]) -> Axis:
    lo = min(p.low for p in points)
    hi = max(p.high for p in points)
    lo = max(0.0, int((lo - 0.03) * 10) / 10)
    hi = min(1.0, -int(-(hi + 0.03) * 10) / 10)
    return Axis(lo, max(hi, lo + 0.1), BOTTOM, TOP)


def _cost_frame(
    x: Axis, y: Axis, zero_x: float | None, unknown_x: float | None, metric: str
) -> list[Markup]:
    parts = [rect(LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP, "frame")]
    for band_x, name in ((zero_x, "$0"), (unknown_x, "cost unknown")):
        if band_x is not None:
            parts.append(rect(band_x - ZONE / 2, TOP, ZONE, BOTTOM - TOP, "zone"))
            parts.append(text(band_x, BOTTOM + 18, name, anchor="middle"))
    for tick in y.ticks():
        parts.append(line(LEFT, y(tick), RIGHT, y(tick), "grid"))
        parts.append(text(LEFT - 8, y(tick) + 4, f"{tick:.2f}", anchor="end"))
    for tick in x.ticks():
        parts.append(line(x(tick), TOP, x(tick), BOTTOM, "grid"))
        parts.append(text(x(tick), BOTTOM + 18, fmt.usd_tick(tick), anchor="middle"))
    return parts + _cost_titles(x, metric)


def _cost_titles(x: Axis, metric: str) -> list[Markup]:
    scale = "log scale" if x.log else "linear"
    x_title = f"API cost per 1,000 requests (USD, {scale})"
    mid = (TOP + BOTTOM) / 2
    turn = f"rotate(-90 18 {f(mid)})"
    return [
        text((LEFT + RIGHT) / 2, H - 14, x_title, "axis-title", "middle"),
        text(18, mid, f"{metric} score (mean, 95% CI)", "axis-title", "middle", transform=turn),
    ]


def _front_line(points: list[Point], y: Axis) -> Markup:
    front = sorted(
        (p for p in points if p.front and p.cost is not None), key=lambda p: (p.cost, -p.mean)
    )
    if len(front) < 2:
        return Markup("")
    coords = " ".join(f"{f(p.x)},{f(y(p.mean))}" for p in front)
    return void("polyline", points=coords, class_="front-line")


def _tone(p: Point) -> str:
    return "unknown" if p.cost is None else "front" if p.front else "other"


def _error_bar(p: Point, y: Axis) -> Markup:
    if p.high <= p.low:
        return Markup("")
    cls = "err front" if p.front else "err"
    parts = [
        line(p.x, y(p.low), p.x, y(p.high), cls),
        line(p.x - 5, y(p.low), p.x + 5, y(p.low), cls),
        line(p.x - 5, y(p.high), p.x + 5, y(p.high), cls),
    ]
    return el("g", parts)


def _dot(p: Point, y: Axis) -> Markup:
    tip = (
        f"{p.name}: {p.mean:.3f} [{p.low:.3f}, {p.high:.3f}], {fmt.usd(p.cost, 4)} per 1k requests"
    )
    return el(
        "circle",
        el("title", tip),
        cx=f(p.x),
        cy=f(y(p.mean)),
        r="6.5",
        class_=f"pt {_tone(p)}",
        data_variant=p.name,
    )


def _labels(points: list[Point], y: Axis) -> list[Markup]:
    """Names beside the points, nudged apart vertically so that they do not overlap."""
    taken: list[tuple[float, float, float]] = []
    out = []
    for p in sorted(points, key=lambda p: y(p.mean)):
        name = p.name if len(p.name) <= 30 else p.name[:29] + "…"
        width = 7.0 * len(name)
        left_side = p.x + 12 + width > RIGHT
        x0 = p.x - 12 - width if left_side else p.x + 12
        ty = y(p.mean) + 4
        while any(abs(ty - oy) < 14 and x0 < ox1 and ox0 < x0 + width for ox0, ox1, oy in taken):
            ty += 14
        taken.append((x0, x0 + width, ty))
        out.append(
            text(
                p.x - 12 if left_side else p.x + 12,
                ty,
                name,
                "lbl",
                "end" if left_side else "start",
            )
        )
    return out


def _legend() -> list[Markup]:
    items = [
        ("front", "Pareto front (best score for the cost)"),
        ("other", "dominated"),
        ("unknown", "cost unknown"),
    ]
    parts, x = [], float(LEFT)
    for cls, label in items:
        parts += [
            void("circle", cx=f(x + 6), cy="22", r="5.5", class_=f"pt {cls}"),
            text(x + 16, 26, label),
        ]
        x += 30 + 6.6 * len(label)
    return parts


# --- latency per model -----------------------------------------------------------------------

ROW = 40
LAT_LEFT, LAT_RIGHT = 200, W - 170
MAX_DOTS = 400


def latency_chart(report: RunReport, latencies: dict[str, list[float]]) -> Markup:
    """One row per model: every response as a dot, the middle half as a box, the median bold."""
    rows = [v for v in report.variants if latencies.get(v.variant)]
    if not rows:
        return el("p", "No completed requests, so no latencies to plot.", class_="muted")
    height = 30 + ROW * len(rows) + 46
    axis = _latency_axis([ms for v in rows for ms in latencies[v.variant]])
    parts = _latency_frame(axis, height)
    for i, v in enumerate(rows):
        parts += _latency_row(v, sorted(latencies[v.variant]), axis, 30 + ROW * i + ROW / 2)
    label = "Latency per request and model (milliseconds)"
    return svg(W, height, label, parts)


def _latency_axis(values: list[float]) -> Axis:
    positive = [v for v in values if v > 0] or [1.0]
    if max(positive) / min(positive) >= 20:
        lo, hi = nice_log_range(positive)
        return Axis(lo, hi, LAT_LEFT, LAT_RIGHT, log=True)
    return Axis(0.0, linear_ticks(0.0, max(positive) * 1.08)[-1], LAT_LEFT, LAT_RIGHT)


def _latency_frame(axis: Axis, height: int) -> list[Markup]:
    bottom = height - 46
    parts = [line(LAT_LEFT, bottom, LAT_RIGHT, bottom, "frame")]
    for tick in axis.ticks():
        parts += [
            line(axis(tick), 22, axis(tick), bottom, "grid"),
            text(axis(tick), bottom + 16, fmt.ms(tick), anchor="middle"),
        ]
    scale = "log scale" if axis.log else "linear"
    parts.append(
        text(
            (LAT_LEFT + LAT_RIGHT) / 2,
            height - 12,
            f"latency per request (ms, {scale})",
            "axis-title",
            "middle",
        )
    )
    parts.append(text(LAT_RIGHT + 12, 16, "p50 · p95 (ms)", "axis-title"))
    return parts


def _latency_row(v: VariantSummary, values: list[float], axis: Axis, cy: float) -> list[Markup]:
    q1, q3 = percentile(values, 25) or 0.0, percentile(values, 75) or 0.0
    median = axis(v.latency_p50_ms or 0.0)
    name = v.variant if len(v.variant) <= 26 else v.variant[:25] + "…"
    summary = f"{fmt.ms(v.latency_p50_ms)} · {fmt.ms(v.latency_p95_ms)}"
    return [
        text(LAT_LEFT - 12, cy + 4, name, "lbl", "end"),
        line(axis(values[0]), cy, axis(values[-1]), cy, "whisker"),
        rect(axis(q1), cy - 9, max(axis(q3) - axis(q1), 1.5), 18, "box"),
        *_strip(values, axis, cy),
        line(median, cy - 12, median, cy + 12, "median"),
        _p95_marker(axis(v.latency_p95_ms or values[-1]), cy),
        text(LAT_RIGHT + 12, cy + 4, summary, data_variant=v.variant),
    ]


def _strip(values: list[float], axis: Axis, cy: float) -> list[Markup]:
    """Every request as a dot, spread vertically by a fixed low-discrepancy sequence."""
    step = max(1, len(values) // MAX_DOTS)
    return [
        circle(axis(ms), cy + ((i * 0.618034) % 1 - 0.5) * 20, 2.6, "dot")
        for i, ms in enumerate(values[::step])
    ]


def _p95_marker(x: float, cy: float) -> Markup:
    points = f"{f(x)},{f(cy - 11)} {f(x - 4.5)},{f(cy - 18)} {f(x + 4.5)},{f(cy - 18)}"
    return el("polygon", el("title", "p95"), points=points, class_="p95")
