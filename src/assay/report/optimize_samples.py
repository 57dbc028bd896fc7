"""The test rows where the starting and the final prompt scored differently, each collapsible:
input, reference, both responses and both scores. All of it is untrusted text, escaped."""

from __future__ import annotations

from assay.report import fmt
from assay.report.html import Markup, el, join
from assay.report.optimize_data import Disagreement, OptimizeView
from assay.scoring.score import Score
from assay.store.runstore import ResultRecord
from assay.trace import TraceNode

MAX_SHOWN = 200  # rows rendered; the count above says how many there are
MAX_TEXT = 20_000  # characters of any one text


def clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"… [{len(text) - MAX_TEXT:,} more characters not shown]"


def disagreements_part(view: OptimizeView) -> Markup:
    result = view.result
    if result is None:
        return el("p", "The test split is scored when the run ends.", class_="muted")
    if result.baseline.prompt_hash == result.final.prompt_hash:
        return el("p", _SAME_PROMPT, class_="muted")
    found = view.disagreements
    intro = (
        f"{len(found)} of {view.test_pairs} test rows scored differently under the starting "
        f"and the final prompt (metric {view.metric}). Open a row to see both responses."
    )
    rows = [_row(d, view.metric) for d in found[:MAX_SHOWN]]
    parts = [el("p", intro, class_="note"), el("div", rows, class_="disagreements")]
    if len(found) > MAX_SHOWN:
        parts.append(el("p", f"The first {MAX_SHOWN} are shown.", class_="note"))
    return join(parts)


def _row(d: Disagreement, metric: str) -> Markup:
    before, after = _score(d.baseline, metric), _score(d.final, metric)
    summary = el(
        "summary",
        [
            el("span", f"sample {d.sample_id}", class_="sid"),
            " starting ",
            _pill(before),
            " → final ",
            _pill(after),
        ],
        style="padding: 8px 12px; cursor: pointer; background: #f8fafc;",
    )
    body = [
        _io(d),
        el(
            "div",
            [
                _output("Starting prompt", d.baseline, before),
                _output("Final prompt", d.final, after),
            ],
            class_="outputs",
        ),
    ]
    return el("details", [summary, *body], class_="sample disagreement", data_sample=d.sample_id)


def _score(result: ResultRecord, metric: str) -> Score | None:
    return result.scores.get(metric)


def _pill(score: Score | None) -> Markup:
    if score is None or not score.is_scored or score.value is None:
        status = score.status if score is not None else "no score"
        return el("span", status, class_="pill warn")
    tone = "good" if score.value >= 1 else "bad" if score.value <= 0 else "mid"
    return el("span", fmt.score(score.value), class_=f"pill {tone}")


def _io(d: Disagreement) -> Markup:
    text = d.sample.input_text() if d.sample else _sent_input(d.baseline)
    reference = d.sample.reference if d.sample else None
    return el(
        "div",
        [_field("Input", text), _field("Reference", reference if reference is not None else "–")],
        class_="sample-io",
    )


def _sent_input(result: ResultRecord) -> str:
    """The task input as sent, without the system prompt (the prompt under test)."""
    return "\n\n".join(m.content for m in result.request.messages if m.role != "system")


def _field(label: str, text: str) -> Markup:
    return el("div", [el("div", label, class_="field-label"), el("div", clip(text), class_="text")])


def _output(label: str, result: ResultRecord, score: Score | None) -> Markup:
    head = el("div", [el("span", label, class_="vname"), _pill(score)], class_="vhead")
    if result.completion is not None and not result.error_kind:
        body = el("div", clip(result.completion.text), class_="resp text")
    else:
        body = el("div", clip(result.error or "no response"), class_="error")
    parts = [head, body]
    if score is not None and score.reason:
        parts.append(el("div", clip(score.reason), class_="reason"))
    parts.extend(_trace(result))
    return el("div", parts, class_="output", data_prompt=label.split()[0].lower())


def _trace(result: ResultRecord) -> list[Markup]:
    """A pipeline sample's warnings and its trace, collapsed (nothing for a plain prompt)."""
    record = result.completion.pipeline if result.completion is not None else None
    if record is None:
        return []
    warnings = [el("div", f"warning: {w}", class_="reason warn-line") for w in record.warnings]
    nodes = record.trace or record.calls
    what = "steps" if record.trace else "model calls"
    summary = el("summary", f"Pipeline trace: {len(nodes)} {what}, {len(record.calls)} model calls")
    items = el("ol", [_node(n) for n in nodes], class_="trace-nodes")
    return [*warnings, el("details", [summary, items], class_="trace")]


def _node(node: TraceNode) -> Markup:
    name = node.name + (" (prompt under test)" if node.optimized else "")
    head = el(
        "div",
        [el("span", node.kind, class_="pill mid"), " ", el("span", name, class_="node-name")],
        class_="node-head",
    )
    io = [el("div", clip(text), class_="text") for text in (node.input, node.output) if text]
    return el("li", [head, *io], class_="node optimized" if node.optimized else "node")


_SAME_PROMPT = (
    "No rewrite was accepted, so the final prompt is the starting prompt: there is nothing to "
    "compare on test."
)
