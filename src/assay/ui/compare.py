"""The compare page: two runs on the same data, sample by sample (``compare_runs``); an
optimize run takes part through its final (or starting) prompt, on its test split."""

from __future__ import annotations

from dataclasses import dataclass

from assay.analysis.runs_compare import OPTIMIZE_PROMPTS, RunComparison, compare_runs
from assay.errors import UserInputError
from assay.report import fmt
from assay.report.html import Markup, el, join, void
from assay.store.runstore import RunRecord, RunStore
from assay.ui.pages import PageContext, page


@dataclass(frozen=True)
class CompareQuery:
    a: str = ""
    b: str = ""
    variant_a: str = ""
    variant_b: str = ""

    @classmethod
    def from_params(cls, params: dict[str, list[str]]) -> CompareQuery:
        def one(name: str) -> str:
            return (params.get(name) or [""])[0].strip()

        return cls(one("a"), one("b"), one("va"), one("vb"))


def compare_page(ctx: PageContext, store: RunStore, query: CompareQuery) -> str:
    runs = [r for r in store.list_runs(200) if r.config.variants or r.kind == "optimize"]
    parts = [
        el("h1", "Compare two runs"),
        el("p", _INTRO, class_="sub"),
        el("section", _form(runs, query), class_="card"),
    ]
    if query.a and query.b:
        parts.append(_result(store, query))
    return page(ctx, "Compare runs", join(parts))


def _form(runs: list[RunRecord], q: CompareQuery) -> Markup:
    variants = sorted({v.key for r in runs for v in r.config.variants})
    if any(r.kind == "optimize" for r in runs):
        variants = [*OPTIMIZE_PROMPTS, *variants]
    fields = [
        _select("a", "Run A (baseline)", runs, q.a),
        _text("va", "Variant A (if several)", q.variant_a),
        _select("b", "Run B", runs, q.b),
        _text("vb", "Variant B (if several)", q.variant_b),
        el("button", "Compare", type="submit", class_="button"),
        el("datalist", [el("option", "", value=v) for v in variants], id="variant-keys"),
    ]
    return el("form", fields, method="get", action="/compare", class_="inline")


def _select(name: str, label: str, runs: list[RunRecord], chosen: str) -> Markup:
    options = [el("option", "choose a run…", value="")]
    for r in runs:
        options.append(el("option", _run_label(r), value=r.id, selected=r.id == chosen))
    return el("label", [label, el("select", options, name=name)])


def _run_label(run: RunRecord) -> str:
    if run.kind == "optimize":
        return f"{run.id} (optimize {', '.join(run.config.models)}, {run.status})"
    return f"{run.id} ({', '.join(v.key for v in run.config.variants)})"


def _text(name: str, label: str, value: str) -> Markup:
    return el(
        "label",
        [
            label,
            void("input", name=name, value=value, list="variant-keys", placeholder="variant key"),
        ],
    )


def _result(store: RunStore, q: CompareQuery) -> Markup:
    try:
        result = compare_runs(store, q.a, q.b, q.variant_a or None, q.variant_b or None)
    except UserInputError as exc:
        return el("div", el("p", str(exc)), class_="callout warn")
    return el(
        "section",
        [el("h2", "Result"), el("p", result.sentence()), _table(result)],
        class_="card",
        data_part="comparison",
    )


def _table(r: RunComparison) -> Markup:
    c = r.comparison
    ci = "–" if c.ci_low is None else f"[{c.ci_low:+.3f}, {c.ci_high or 0:+.3f}]"
    rows = [
        ("Metric", r.metric),
        ("A", f"{r.run_a} · {r.label_a or r.variant_a}"),
        ("B", f"{r.run_b} · {r.label_b or r.variant_b}"),
        (f"Paired {r.scope}", f"{c.n} ({c.n_dropped} without a score on both sides)"),
        ("Mean A → B", f"{fmt.score(c.mean_a)} → {fmt.score(c.mean_b)}"),
        ("Difference B − A", f"{fmt.signed(c.diff)} {ci}"),
        ("p-value", fmt.p_value(c.p_value)),
        ("Significant", "yes" if c.significant else "no"),
        ("Method", c.method),
    ]
    body = el("tbody", [el("tr", [el("th", k, scope="row"), el("td", v)]) for k, v in rows])
    return el("table", body, class_="kv")


_INTRO = (
    "Pick two runs on the same dataset, e.g. before and after a prompt change. The difference "
    "is paired by sample, with a confidence interval and a sign-flip permutation test. An "
    "optimize run is compared through its final prompt (variant “final”, or “baseline” for its "
    "starting prompt) on its held-out test split."
)
