"""The trajectory of an optimize run: train and validation score per iteration, each iteration
marked by its outcome (start, accepted, rejected) with its reason in the tooltip."""

from __future__ import annotations

from dataclasses import dataclass

from assay.optimizer.records import IterationRecord
from assay.report import fmt
from assay.report.html import Markup, el, void
from assay.report.svg import Axis, f, line, svg, text

WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 932, 44, 270

# Presentation attributes (not CSS): the marks look the same in the report and the dashboard.
MARKS = {
    "baseline": {"fill": "#0f172a", "stroke": "#ffffff"},
    "accepted": {"fill": "#16a34a", "stroke": "#ffffff"},
    "rejected": {"fill": "#ffffff", "stroke": "#d97706"},
}
STATUS_NAMES = {"baseline": "starting prompt", "accepted": "accepted", "rejected": "rejected"}


@dataclass(frozen=True)
class Frame:
    x: Axis
    y: Axis


def has_scores(records: list[IterationRecord]) -> bool:
    return any(r.train_score is not None or r.val_candidate is not None for r in records)


def trajectory_chart(records: list[IterationRecord]) -> Markup:
    last = max((r.idx for r in records), default=0)
    frame = Frame(Axis(0, max(1, last), LEFT, RIGHT), Axis(0.0, 1.0, BOTTOM, TOP))
    parts = [*_grid(frame, records), *_legend()]
    parts += _series(records, frame, "train")
    parts += _series(records, frame, "val")
    parts += [_mark(r, v, frame) for r in records if (v := _mark_value(r)) is not None]
    return svg(WIDTH, HEIGHT, "Train and validation score per iteration", parts)


def _grid(frame: Frame, records: list[IterationRecord]) -> list[Markup]:
    parts: list[Markup] = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts += [
            line(LEFT, frame.y(tick), RIGHT, frame.y(tick), "grid"),
            text(LEFT - 8, frame.y(tick) + 4, f"{tick:.2f}", anchor="end"),
        ]
    for r in records:
        label = "start" if r.status == "baseline" else str(r.idx)
        parts.append(text(frame.x(r.idx), BOTTOM + 18, label, anchor="middle"))
    parts.append(text((LEFT + RIGHT) / 2, HEIGHT - 8, "iteration", "axis-title", "middle"))
    return parts


def _legend() -> list[Markup]:
    y = 18
    return [
        line(LEFT, y, LEFT + 24, y, "train"),
        text(LEFT + 30, y + 4, "train batch"),
        line(LEFT + 130, y, LEFT + 154, y, "val"),
        text(LEFT + 160, y + 4, "validation"),
        *_legend_mark(LEFT + 270, y, "baseline"),
        *_legend_mark(LEFT + 410, y, "accepted"),
        *_legend_mark(LEFT + 520, y, "rejected"),
    ]


def _legend_mark(x: float, y: float, status: str) -> list[Markup]:
    dot = void("circle", cx=f(x), cy=f(y), r="6", stroke_width="2", **MARKS[status])
    return [dot, text(x + 12, y + 4, STATUS_NAMES[status])]


def _value(record: IterationRecord, series: str) -> float | None:
    return record.train_score if series == "train" else record.val_candidate


def _series(records: list[IterationRecord], frame: Frame, series: str) -> list[Markup]:
    pts = [(r.idx, v) for r in records if (v := _value(r, series)) is not None]
    if not pts:
        return []
    path = " ".join(f"{f(frame.x(i))},{f(frame.y(v))}" for i, v in pts)
    name = "train batch" if series == "train" else "validation"
    dots = [
        el(
            "circle",
            el("title", f"Iteration {i}: {name} {v:.3f}"),
            cx=f(frame.x(i)),
            cy=f(frame.y(v)),
            r="3",
            class_=f"{series}-pt",
        )
        for i, v in pts
    ]
    return [void("polyline", points=path, class_=series), *dots]


def _mark_value(record: IterationRecord) -> float | None:
    """Where the outcome is drawn: on the validation score, or on train when val was skipped."""
    return record.val_candidate if record.val_candidate is not None else record.train_score


def _mark(record: IterationRecord, value: float, frame: Frame) -> Markup:
    return el(
        "circle",
        el("title", mark_title(record)),
        cx=f(frame.x(record.idx)),
        cy=f(frame.y(value)),
        r="7",
        stroke_width="2.5",
        class_="status-pt",
        data_status=record.status,
        data_iteration=str(record.idx),
        **MARKS.get(record.status, MARKS["rejected"]),
    )


def mark_title(record: IterationRecord) -> str:
    head = "Starting prompt" if record.status == "baseline" else f"Iteration {record.idx}"
    status = "" if record.status == "baseline" else f" ({record.status})"
    scores = f"train {fmt.score(record.train_score)}, validation {fmt.score(record.val_candidate)}"
    reason = f": {record.reason}" if record.reason else ""
    return f"{head}{status}{reason} — {scores}"
