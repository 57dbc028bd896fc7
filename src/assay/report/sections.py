"""One run's part of a page: its header, then the benchmark or the optimization sections."""

from __future__ import annotations

import re

from assay.analysis.results import RunReport
from assay.report import fmt
from assay.report.charts import cost_quality_chart, latency_chart
from assay.report.data import RunView
from assay.report.decisions import decisions_card_body
from assay.report.html import Markup, el, join
from assay.report.optimize import optimize_section
from assay.report.prompts import prompt_groups, prompts_body
from assay.report.samples import explorer
from assay.report.tables import (
    comparison_matrix,
    confusion_tables,
    metrics_table,
    models_table,
)

KIND_TITLES = {"run": "Benchmark", "optimize": "Optimization"}


def anchor(run_id: str) -> str:
    return "run-" + re.sub(r"[^A-Za-z0-9_-]", "-", run_id)


def run_section(view: RunView) -> Markup:
    """Everything about one run, in a ``<section class="run">``."""
    parts = [_header(view)]
    if view.report is not None:
        parts += benchmark_parts(view, view.report)
    elif view.run.kind == "optimize":
        parts.append(optimize_section(view))
    else:
        parts.append(
            el("p", f"No report view for runs of kind {view.run.kind!r} yet.", class_="muted")
        )
    return el("section", parts, class_="run", id=anchor(view.run.id), data_run=view.run.id)


def _header(view: RunView) -> Markup:
    run = view.run
    title = f"{KIND_TITLES.get(run.kind, run.kind.title())} run {run.id}"
    sub = f"{run.status} · started {fmt.when(run.created_at)} · assay {run.assay_version}"
    return join([el("h1", title), el("p", sub, class_="sub")])


def benchmark_parts(view: RunView, report: RunReport) -> list[Markup]:
    pairs = join([comparison_matrix(report), el("p", _PAIRS_NOTE, class_="note")])
    samples = join([_samples_note(view), explorer(view, anchor(view.run.id))])
    prompts = _prompts_card(view)
    compared = len(prompt_groups(view)) > 1
    return [
        *_callouts(report),
        _card("Overview", _overview(view, report)),
        *([prompts] if compared else []),
        _card("Models", join([models_table(report), _table_note(report)])),
        *_metric_cards(report),
        _card("Cost and quality", _figure(cost_quality_chart(report), _scatter_caption(report))),
        _card("Latency", _figure(latency_chart(report, latencies(view)), _LATENCY_CAPTION)),
        _card("Paired comparisons", pairs),
        *_decisions_card(report),
        *([prompts] if prompts and not compared else []),
        _card("Samples", samples, "samples"),
    ]


def _decisions_card(report: RunReport) -> list[Markup]:
    body = decisions_card_body(report)
    return [] if body is None else [_card("Decisions", body, "decisions")]


def _prompts_card(view: RunView) -> Markup:
    groups = prompt_groups(view)
    if not groups:
        return Markup("")
    title = "Prompts" if len(groups) > 1 else "Prompt"
    return _card(title, prompts_body(groups), "prompts")


def _metric_cards(report: RunReport) -> list[Markup]:
    """Every metric (when there is more than the primary one) and the label confusion."""
    out = []
    if len(report.metric_names()) > 1:
        note = el("p", _METRICS_NOTE, class_="note")
        out.append(_card("All metrics", join([metrics_table(report), note]), "metrics"))
    if any(v.confusion for v in report.variants):
        note = el("p", _CONFUSION_NOTE, class_="note")
        out.append(_card("Confusion matrix", join([confusion_tables(report), note]), "confusion"))
    return out


def _card(title: str, body: Markup, kind: str | None = None) -> Markup:
    return el("section", [el("h2", title), body], class_="card", data_part=kind or title.lower())


def _figure(chart: Markup, caption: str) -> Markup:
    return el("figure", [chart, el("figcaption", caption)])


def _callouts(report: RunReport) -> list[Markup]:
    out = (
        [el("div", el("p", _RUNNING_NOTE), class_="callout warn")]
        if report.status == "running"
        else []
    )
    out += [
        el(
            "div",
            el("p", [el("span", "Recommendation", class_="label"), report.recommendation]),
            class_="callout recommendation",
        )
    ]
    if report.stopped_reason:
        text = (
            f"Stopped early: {report.stopped_reason}. "
            f"Continue with: assay run --resume {report.run_id}"
        )
        out.append(el("div", el("p", text), class_="callout warn"))
    return out


def _overview(view: RunView, report: RunReport) -> Markup:
    stored = view.run.config
    judges = ", ".join(stored.judges)
    items = [
        ("Dataset", report.dataset.path),
        ("Dataset sha256", report.dataset.sha256[:16] + "…"),
        ("Samples × repeats", f"{report.dataset.n_samples} × {stored.repeats}"),
        ("Primary metric", report.primary_metric),
        ("Judge", judges or "none"),
        ("Cost (task + judge)", fmt.usd(report.total_cost_usd)),
        ("Spent by this run", fmt.usd(report.spent_usd)),
        ("Pareto front (quality vs $/1k)", ", ".join(report.pareto_quality_cost) or "–"),
    ]
    if report.majority_baseline is not None:
        baseline = report.majority_baseline
        name = f"Baseline ({baseline.metric})"
        items.append((name, f"{baseline.describe()} (majority class, n={baseline.n})"))
    return el("dl", [el("div", [el("dt", k), el("dd", v)]) for k, v in items], class_="meta")


def _table_note(report: RunReport) -> Markup:
    return el("p", _MODELS_NOTE.format(metric=report.primary_metric), class_="note")


def _scatter_caption(report: RunReport) -> str:
    front = ", ".join(report.pareto_quality_cost) or "none"
    return f"{_SCATTER_CAPTION} Pareto front: {front}."


def _samples_note(view: RunView) -> Markup:
    if view.samples:
        return Markup("")
    return el("p", _NO_DATA_NOTE, class_="note")


def latencies(view: RunView) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in view.results:
        if r.completion is not None:
            out.setdefault(r.variant, []).append(r.completion.latency_s * 1000)
    return out


_RUNNING_NOTE = (
    "This run is still running: every number below covers only the results recorded so far."
)
_MODELS_NOTE = (
    "Score: mean {metric} over scored responses with a 95% bootstrap interval. Unscored "
    "responses and failed requests are excluded from the mean and counted here. Cost per 1,000 "
    "requests comes from real token usage; “unknown” means no price is known, never $0."
)
_SCATTER_CAPTION = (
    "Each point is a model: its mean score with the 95% interval, against its API cost per "
    "1,000 requests. Up and to the left is better; the dashed line joins the Pareto front."
)
_LATENCY_CAPTION = (
    "Each dot is one request. The box spans the middle half (p25–p75), the bold line is the "
    "median and the orange marker p95; the whisker reaches the fastest and slowest request."
)
_PAIRS_NOTE = (
    "Each cell is the row's mean score minus the column's, on the samples both answered, with "
    "the paired sign-flip permutation test and its 95% interval (the test inverted, so the "
    "two never disagree), each pair on its own. Green: row significantly better; red: "
    "significantly worse."
)
_METRICS_NOTE = (
    "Every metric the run scored: mean over scored responses with a 95% bootstrap interval, "
    "and how many responses it scored. “always '…'” is the majority-class baseline: the score "
    "of giving the most common reference label for every sample."
)
_CONFUSION_NOTE = (
    "Rows: the reference label; columns: the label found in the answer (“(no label)”: none "
    "was found). The diagonal counts correct answers; repeats count once each."
)
_NO_DATA_NOTE = (
    "References are read from the run's data file, which is missing or changed since the run; "
    "inputs are shown as they were sent."
)
