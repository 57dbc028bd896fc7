"""The per-sample explorer: every sample's input, reference and each variant's output, as data.

The page script renders it with ``textContent`` only; here it is plain JSON in a JSON island.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assay.records import Completion, Request
from assay.report.data import RunView
from assay.report.html import Markup, el, join, json_island, void
from assay.report.prompts import differs
from assay.scoring.score import Score
from assay.store.runstore import ResultRecord
from assay.text import natural_key
from assay.trace import MODEL_KIND, TraceNode

MAX_TEXT = 20_000  # characters of any one text kept in the page
MAX_TRACE_TEXT = 4_000  # characters of a trace step's input or output kept in the page

Cell = dict[str, Any]


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"… [{len(text) - MAX_TEXT:,} more characters not shown]"


def explorer_data(view: RunView) -> dict[str, Any]:
    variants = view.variant_keys
    by_item: dict[tuple[str, int], dict[str, ResultRecord]] = {}
    for r in view.results:
        by_item.setdefault((r.sample_id, r.repeat), {})[r.variant] = r
    keys = sorted(by_item, key=lambda k: (natural_key(k[0]), k[0], k[1]))  # 2 before 10
    rows = [_row(k, by_item[k], variants, view) for k in keys]
    has_reference = any(row["reference"] is not None for row in rows)
    return {
        "variants": variants,
        "metric": view.primary_metric,
        "rows": rows,
        "references": has_reference,
        "differs": differs(view),
    }


def _row(
    key: tuple[str, int], results: dict[str, ResultRecord], variants: list[str], view: RunView
) -> dict[str, Any]:
    sample_id, repeat = key
    sample = view.samples.get(sample_id)
    first = next(iter(results.values()))
    cells = [_cell(results.get(v), view.primary_metric) for v in variants]
    return {
        "id": sample_id,
        "repeat": repeat,
        "input": clip(sample.input_text() if sample else request_input(first.request)),
        "reference": clip(sample.reference) if sample else None,
        "cells": cells,
        **row_flags(cells),
    }


def request_input(request: Request) -> str:
    """The task input as sent, without the system prompt (the prompt under test)."""
    return "\n\n".join(m.content for m in request.messages if m.role != "system")


def _cell(result: ResultRecord | None, metric: str) -> Cell:
    if result is None:
        return {"status": "missing", "score": None, "text": None}
    score = result.scores.get(metric)
    completion = result.completion
    return {
        "status": "error" if result.error_kind else (score.status if score else "unscored"),
        "score": score.value if score and score.is_scored else None,
        "text": clip(completion.text) if completion and not result.error_kind else None,
        "error": clip(result.error),
        "reason": clip(score.reason) if score else None,
        "rationale": clip(_detail(score, "rationale")),
        "raw": clip(_detail(score, "raw_reply")),
        "others": _other_scores(result.scores, metric),
        "latency_ms": round(completion.latency_s * 1000, 1) if completion else None,
        "cached": completion.cached if completion else False,
        "trace": trace_data(completion),
    }


def trace_data(completion: Completion | None) -> dict[str, Any] | None:
    """A pipeline sample's trace for the page: its own steps, each metered model call, and
    its warnings (None for a plain prompt's completion)."""
    record = completion.pipeline if completion is not None else None
    if record is None:
        return None
    return {
        "steps": [_node(n) for n in record.trace],
        "calls": [_node(n) for n in record.calls],
        "warnings": [clip(w) for w in record.warnings],
    }


def _node(node: TraceNode) -> dict[str, Any]:
    def cut(text: str) -> str:
        extra = len(text) - MAX_TRACE_TEXT
        return text if extra <= 0 else text[:MAX_TRACE_TEXT] + f"… [{extra:,} more characters]"

    return {
        "kind": node.kind,
        "name": cut(node.name),
        "input": cut(node.input),
        "output": cut(node.output),
        "optimized": node.optimized,
        "meta": _call_meta(node) if _metered(node) else "",
    }


def _metered(node: TraceNode) -> bool:
    """A model call Assay recorded (a pipeline's own model steps carry no numbers)."""
    return node.kind == MODEL_KIND and node.latency_s is not None


def _call_meta(node: TraceNode) -> str:
    """A model call's numbers in one line: tokens, cost, latency, cached."""
    tokens = f"{_n(node.input_tokens)} in / {_n(node.output_tokens)} out tokens"
    cost = "cost unknown" if node.cost_usd is None else f"${node.cost_usd:.6f}"
    latency = f"{(node.latency_s or 0.0) * 1000:.0f} ms"
    return " · ".join([tokens, cost, latency, *(["cached"] if node.cached else [])])


def _n(count: int | None) -> str:
    return "?" if count is None else f"{count:,}"


def _detail(score: Score | None, name: str) -> str | None:
    value = score.details.get(name) if score else None
    return None if value is None else str(value)


def _other_scores(scores: dict[str, Score], primary: str) -> list[list[Any]]:
    return [
        [name, s.value if s.is_scored else s.status]
        for name, s in sorted(scores.items())
        if name != primary
    ]


def row_flags(cells: Sequence[Cell]) -> dict[str, Any]:
    """failure: any variant below 1 or without a score; disagree: variants differ; spread."""
    values = [c["score"] for c in cells if c["score"] is not None]
    outcomes = {(c["status"], c["score"]) for c in cells}
    return {
        "failure": any(c["score"] is None or c["score"] < 1 for c in cells),
        "disagree": len(outcomes) > 1,
        "spread": round(max(values) - min(values), 6) if len(values) > 1 else 0.0,
    }


FILTERS = (
    ("all", "All"),
    ("failures", "Failures"),
    ("disagree", "Disagreements"),
    ("changes", "Biggest changes"),
)


def explorer(view: RunView, uid: str) -> Markup:
    """The filter bar, the (empty) list the script fills, and the data it reads."""
    data_id = f"samples-{uid}"
    buttons = [
        el(
            "button",
            label,
            type="button",
            data_filter=name,
            aria_pressed=str(name == "all").lower(),
        )
        for name, label in FILTERS
    ]
    hint = "Search inputs, references, outputs…"
    search = void("input", type="search", placeholder=hint, aria_label="Search samples")
    count = el("span", "", class_="count", aria_live="polite")
    toolbar = el("div", [*buttons, search, count], class_="toolbar")
    box = el(
        "div",
        [toolbar, el("div", "", class_="sample-list")],
        class_="explorer",
        data_source=data_id,
    )
    return join([box, json_island(data_id, explorer_data(view))])
