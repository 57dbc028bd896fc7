"""The optimization section, rendered generically from ``store.iterations(run_id)`` records.

Keys used when present: ``train_score``/``val_score`` (the trajectory chart), ``prompt``,
``explanation``, ``status``, ``reason``, ``parent`` (an index or an ``id``) and any other
scalar values, shown as a small table. Everything else is ignored.
"""

from __future__ import annotations

import difflib
from typing import Any

from assay.report import fmt
from assay.report.data import RunView
from assay.report.html import Markup, el, join, void
from assay.report.svg import Axis, f, line, svg, text

Record = dict[str, Any]
SHOWN_KEYS = {"prompt", "explanation", "status", "reason", "parent"}


def optimize_section(view: RunView) -> Markup:
    records = view.iterations
    parts = [el("h2", "Optimization")]
    if not records:
        return join([*parts, el("p", "No iterations recorded yet.", class_="muted")])
    if any(_num(r.get("train_score")) or _num(r.get("val_score")) for r in records):
        parts.append(
            el(
                "figure",
                [
                    trajectory_chart(records),
                    el("figcaption", "Score per iteration: train (grey) and validation (blue)."),
                ],
            )
        )
    parts.append(
        el("div", [_iteration(records, i) for i in range(len(records))], class_="iterations")
    )
    return el("section", parts, class_="card")


def _num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def trajectory_chart(records: list[Record]) -> Markup:
    width, height, left, right, top, bottom = 960, 300, 64, 932, 20, 250
    x = Axis(0, max(1, len(records) - 1), left, right)
    y = Axis(0.0, 1.0, bottom, top)
    parts: list[Markup] = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts += [
            line(left, y(tick), right, y(tick), "grid"),
            text(left - 8, y(tick) + 4, f"{tick:.2f}", anchor="end"),
        ]
    for i in range(len(records)):
        parts.append(text(x(i), bottom + 18, str(i), anchor="middle"))
    parts.append(text((left + right) / 2, height - 8, "iteration", "axis-title", "middle"))
    for key, cls in (("train_score", "train"), ("val_score", "val")):
        parts += _series(records, key, cls, x, y)
    return svg(width, height, "Train and validation score per iteration", parts)


def _series(records: list[Record], key: str, cls: str, x: Axis, y: Axis) -> list[Markup]:
    pts = [(i, float(r[key])) for i, r in enumerate(records) if _num(r.get(key))]
    if not pts:
        return []
    path = " ".join(f"{f(x(i))},{f(y(v))}" for i, v in pts)
    dots = [
        el(
            "circle",
            el("title", f"{key} {v:.3f}"),
            cx=f(x(i)),
            cy=f(y(v)),
            r="4",
            class_=f"{cls}-pt",
        )
        for i, v in pts
    ]
    return [void("polyline", points=path, class_=cls), *dots]


def _iteration(records: list[Record], i: int) -> Markup:
    record = records[i]
    head = [el("h3", f"Iteration {record.get('iteration', i)}")]
    if record.get("status"):
        head.append(el("span", str(record["status"]), class_="pill"))
    parts = [el("div", head, class_="toolbar")]
    if record.get("reason"):
        parts.append(el("p", str(record["reason"]), class_="muted"))
    if record.get("explanation"):
        parts.append(el("p", str(record["explanation"]), class_="text"))
    parts.append(_scalars(record))
    if isinstance(record.get("prompt"), str):
        parts.append(_prompt_block(record["prompt"], _parent_prompt(records, i)))
    return el("div", parts, class_="iteration")


def _scalars(record: Record) -> Markup:
    rows = [
        el(
            "tr",
            [el("th", key), el("td", fmt.score(value) if isinstance(value, float) else str(value))],
        )
        for key, value in record.items()
        if key not in SHOWN_KEYS and (isinstance(value, str | int | float | bool) or value is None)
    ]
    return el("table", el("tbody", rows)) if rows else Markup("")


def _parent_prompt(records: list[Record], i: int) -> str | None:
    parent = records[i].get("parent")
    if isinstance(parent, int) and not isinstance(parent, bool) and 0 <= parent < len(records):
        found: Record | None = records[parent]
    elif isinstance(parent, str):
        found = next((r for r in records if r.get("id") == parent), None)
    else:
        found = next((r for r in reversed(records[:i]) if isinstance(r.get("prompt"), str)), None)
    prompt = found.get("prompt") if found else None
    return prompt if isinstance(prompt, str) else None


def _prompt_block(prompt: str, parent: str | None) -> Markup:
    prompt_view = el("details", [el("summary", "Prompt"), el("div", prompt, class_="diff")])
    if parent is None or parent == prompt:
        return prompt_view
    return join(
        [
            el(
                "details",
                [el("summary", "Change from its parent"), prompt_diff(parent, prompt)],
                open=True,
            ),
            prompt_view,
        ]
    )


def prompt_diff(before: str, after: str) -> Markup:
    """A unified line diff, every line escaped, additions and deletions marked."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=2)
    spans = []
    for row in lines:
        if row.startswith(("---", "+++")):
            continue
        cls = (
            "hunk"
            if row.startswith("@@")
            else "add"
            if row.startswith("+")
            else "del"
            if row.startswith("-")
            else None
        )
        spans.append(el("span", row + "\n", class_=cls) if cls else el("span", row + "\n"))
    return el("div", spans, class_="diff")
