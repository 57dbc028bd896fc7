"""Terminal rendering of the decisions against the reference (``--margin``, ``--adaptive``)."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from assay.analysis.decisions import AdaptiveSpend, Decisions, VariantDecision, dollars_text
from assay.cli.untrusted import visible

VERDICT_STYLE = {
    "superior": "green",
    "non-inferior": "green",
    "inferior": "red",
    "not settled": "yellow",
    "reference": "bold",
}


def decisions_table(decisions: Decisions) -> Table:
    margin = "no margin" if decisions.margin is None else f"margin {decisions.margin:g}"
    level = 1 - decisions.alpha / decisions.comparisons
    table = Table(
        title=Text(
            f"Against {visible(decisions.reference)} ({margin}; {level:.1%} intervals)",
            style="table.title",
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=_caption(decisions),
        caption_justify="left",
    )
    for col in ("variant", "verdict", "diff", "interval", "p", "samples", "to settle"):
        table.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
    for d in decisions.variants:
        table.add_row(*_cells(d))
    return table


def _cells(d: VariantDecision) -> list[Text | str]:
    verdict = Text(d.outcome, style=VERDICT_STYLE[d.outcome])
    c = d.comparison
    if c is None or c.diff is None:
        return [Text(visible(d.variant)), verdict, "", "", "", str(d.samples), ""]
    interval = "–" if c.ci_low is None else f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
    samples = f"{d.samples}" + (" (stopped)" if d.stopped_early else "")
    return [
        Text(visible(d.variant)),
        verdict,
        f"{c.diff:+.3f}",
        interval,
        "–" if c.p_value is None else f"{c.p_value:.3g}",
        samples,
        _to_settle(d),
    ]


def _to_settle(d: VariantDecision) -> str:
    if d.outcome != "not settled":
        return ""
    if d.more_samples is None:
        return "on the margin"
    dollars = "" if d.more_cost_usd is None else f", {dollars_text(d.more_cost_usd)}"
    return f"~{d.more_samples:,} samples{dollars}"


def _caption(decisions: Decisions) -> str:
    k = decisions.comparisons
    text = f"{decisions.method}" + (f"; Bonferroni over {k} comparisons" if k > 1 else "")
    if decisions.adaptive is not None:
        text += "\n" + spend_line(decisions.adaptive)
    return text


def spend_line(spend: AdaptiveSpend) -> str:
    saved = 1 - spend.calls / spend.full_calls if spend.full_calls else 0.0
    cost = ""
    if spend.cost_usd is not None and spend.full_cost_usd is not None:
        cost = f", ${spend.cost_usd:.4f} of about ${spend.full_cost_usd:.4f}"
    return f"Adaptive: {spend.calls:,} of {spend.full_calls:,} task calls ({saved:.0%} fewer){cost}"
