"""The decisions card: every variant against the reference at the stated margin, as the
recommendation reads them (the same ``Decisions`` the CLI and -o JSON hold)."""

from __future__ import annotations

from assay.analysis.decisions import Decisions, VariantDecision, interval, to_settle
from assay.analysis.results import RunReport
from assay.report import fmt
from assay.report.html import Markup, el, join
from assay.report.tables import td, th

PILL = {
    "superior": "good",
    "non-inferior": "good",
    "inferior": "bad",
    "not settled": "warn",
    "reference": "",
}


def decisions_card_body(report: RunReport) -> Markup | None:
    decisions = report.decisions
    if decisions is None or len(report.variants) < 2:
        return None
    heads = [th("Variant"), th("Verdict"), th("Difference", True), th("Interval", True),
             th("p", True), th("Samples", True), th("To settle")]  # fmt: skip
    rows = [_row(d) for d in decisions.variants]
    table = el("table", [el("thead", el("tr", heads)), el("tbody", rows)], class_="decisions")
    return join([el("p", _question(decisions)), el("div", table, class_="table-wrap"),
                 el("p", _method(decisions), class_="note")])  # fmt: skip


def _question(decisions: Decisions) -> str:
    ref = decisions.reference
    who = "the baseline" if decisions.baseline else "the best variant"
    if decisions.margin is None:
        return (
            f"Each variant against {ref} ({who}), with no margin stated: a variant that is not "
            "significantly worse is not shown to be as good. Pass --margin to decide."
        )
    return (
        f"Each variant against {ref} ({who}): non-inferior when the interval's lower end is "
        f"above -{decisions.margin:g}, inferior when its upper end is below it."
    )


def _row(d: VariantDecision) -> Markup:
    c = d.comparison
    pill = el("span", d.outcome, class_=f"pill {PILL[d.outcome]}".strip())
    samples = f"{d.samples}" + (" (stopped)" if d.stopped_early else "")
    settle = to_settle(d) if d.outcome == "not settled" else ""
    if c is None:
        cells = [td(""), td(""), td("")]
    else:
        bounds = "" if c.ci_low is None else f"[{fmt.signed(c.ci_low)}, {fmt.signed(c.ci_high)}]"
        cells = [td(fmt.signed(c.diff), True), td(bounds, True), td(fmt.p_value(c.p_value), True)]
    return el(
        "tr",
        [td(d.variant), el("td", pill), *cells, td(samples, True), td(settle)],
        data_variant=d.variant,
        data_outcome=d.outcome,
        title=interval(c) if c else None,
    )


def _method(decisions: Decisions) -> str:
    k = decisions.comparisons
    level = 1 - decisions.alpha / k
    text = f"{decisions.method}; {level:.1%} intervals"
    text += f" (Bonferroni over {k} comparisons)." if k > 1 else "."
    spend = decisions.adaptive
    if spend is not None:
        saved = 1 - spend.calls / spend.full_calls if spend.full_calls else 0.0
        text += f" Adaptive: {spend.calls:,} of {spend.full_calls:,} task calls ({saved:.0%} fewer)"
        if spend.cost_usd is not None and spend.full_cost_usd is not None:
            text += f", {fmt.usd(spend.cost_usd)} of about {fmt.usd(spend.full_cost_usd)}"
        text += "."
    return text
