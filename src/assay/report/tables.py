"""The benchmark tables: models (the numbers of ``analyse()``) and the paired comparisons."""

from __future__ import annotations

from assay.analysis.baseline import MajorityBaseline
from assay.analysis.compare import PairRow
from assay.analysis.results import RunReport
from assay.analysis.summary import VariantSummary
from assay.report import fmt
from assay.report.html import Markup, el, join
from assay.scoring.metrics import NO_LABEL
from assay.scoring.stats import Aggregate, PairedComparison


def th(text: str, num: bool = False, title: str | None = None) -> Markup:
    return el("th", text, class_="num" if num else None, scope="col", title=title)


def td(content: str, num: bool = False, **kw: object) -> Markup:
    return el("td", content, class_="num" if num else None, **kw)


def models_table(report: RunReport) -> Markup:
    judged = any(v.judge_cost_usd for v in report.variants)
    heads = [
        th("Model"),
        th(f"Score ({report.primary_metric})", True, "mean with a 95% bootstrap interval"),
        th("ok / unscored / errors", True, "unscored and errors are excluded from the mean"),
        th("$ / 1k req", True, "task model, from real token usage"),
        *([th("Judge $", True)] if judged else []),
        th("p50", True, "median latency per request"),
        th("p95", True, "95th percentile latency per request"),
        th("tok/s", True, "output tokens per second"),
        th("tokens in / out", True, "mean per request"),
    ]
    best = _best_variant(report.variants)
    rows = [_model_row(v, report, judged, v.variant == best) for v in report.variants]
    baseline = report.majority_baseline
    if baseline is not None and baseline.metric == report.primary_metric:
        rows.append(_baseline_row(baseline, len(heads)))
    table = el("table", [el("thead", el("tr", heads)), el("tbody", rows)], class_="models")
    return el("div", table, class_="table-wrap")


def baseline_name(baseline: MajorityBaseline) -> Markup:
    return join(
        [
            el("div", f"always '{baseline.answer}'", class_="model-name"),
            el("div", "majority-class baseline", class_="model-spec"),
        ]
    )


def baseline_score(baseline: MajorityBaseline) -> Markup:
    return join(
        [el("strong", fmt.score(baseline.score)), el("span", f"n={baseline.n}", class_="ci")]
    )


def _baseline_row(baseline: MajorityBaseline, columns: int) -> Markup:
    """Not a model: the score of always giving the most common reference label."""
    note = "the most common reference label, given for every sample: no calls, no cost"
    cells = [
        td(baseline_name(baseline)),
        td(baseline_score(baseline), True, data_baseline="score"),
        el("td", note, class_="muted", colspan=columns - 2),
    ]
    return el("tr", cells, class_="baseline", data_baseline=baseline.metric)


def _best_variant(variants: list[VariantSummary]) -> str | None:
    means = {v.variant: v.score.mean for v in variants if v.score and v.score.mean is not None}
    return max(means, key=lambda name: means[name]) if means else None


def _model_row(v: VariantSummary, report: RunReport, judged: bool, best: bool) -> Markup:
    agg = v.score
    counts = f"{agg.n_scored} / {agg.n_unscored} / {v.n_errors}" if agg else f"0 / 0 / {v.n_errors}"
    cells = [
        td(_model_cell(v, report)),
        td(_score_cell(v), True, data_metric="score"),
        td(counts, True, data_metric="counts"),
        td(_cost_cell(v), True, data_metric="cost"),
        *([td(fmt.usd(v.judge_cost_usd), True)] if judged else []),
        td(f"{fmt.ms(v.latency_p50_ms)} ms", True, data_metric="p50"),
        td(f"{fmt.ms(v.latency_p95_ms)} ms", True, data_metric="p95"),
        td(fmt.number(v.output_tokens_per_s), True),
        td(
            f"{fmt.number(v.input_tokens_per_request, 0)} / "
            f"{fmt.number(v.output_tokens_per_request, 0)}",
            True,
        ),
    ]
    return el("tr", cells, class_="best" if best else None, data_variant=v.variant)


def _model_cell(v: VariantSummary, report: RunReport) -> Markup:
    parts = [el("div", v.variant, class_="model-name")]
    if v.model and v.model != v.variant:
        parts.append(el("div", v.model, class_="model-spec"))
    if v.variant in report.pareto_quality_cost:
        parts.append(el("span", "Pareto: quality/cost", class_="pill front"))
    return join(parts)


def _score_cell(v: VariantSummary) -> Markup:
    agg = v.score
    if agg is None or agg.mean is None:
        return el("span", "no score", class_="muted")
    return join([el("strong", fmt.score(agg.mean)), el("span", fmt.ci(agg), class_="ci")])


def _cost_cell(v: VariantSummary) -> Markup:
    main = fmt.usd(v.cost_per_1k_usd, 3)
    if v.self_hosting_cost_per_1k_usd is None:
        return el("span", main)
    hosting = f"self-hosting ≈ {fmt.usd(v.self_hosting_cost_per_1k_usd, 3)}"
    return join([el("span", main), el("div", hosting, class_="model-spec")])


# --- every metric ---------------------------------------------------------------------------


def metrics_table(report: RunReport) -> Markup:
    """Every metric of every variant: mean, 95% interval and how many responses it scored."""
    names = report.metric_names()
    heads = [
        th("Model"),
        *(th(n + (" (primary)" if n == report.primary_metric else ""), True) for n in names),
    ]
    rows = [
        el(
            "tr",
            [td(v.variant), *(_metric_cell(v.metrics.get(n), n) for n in names)],
            data_variant=v.variant,
        )
        for v in report.variants
    ]
    baseline = report.majority_baseline
    if baseline is not None and baseline.metric in names:
        cells = [
            td(baseline_name(baseline)),
            *(
                td(baseline_score(baseline), True, data_value_of=n)
                if n == baseline.metric
                else td("", True)
                for n in names
            ),
        ]
        rows.append(el("tr", cells, class_="baseline", data_baseline=baseline.metric))
    table = el("table", [el("thead", el("tr", heads)), el("tbody", rows)], class_="metrics")
    return el("div", table, class_="table-wrap")


def _metric_cell(agg: Aggregate | None, name: str) -> Markup:
    if agg is None or agg.mean is None:
        return td(el("span", "no score", class_="muted"), True, data_value_of=name)
    content = [
        el("strong", fmt.score(agg.mean)),
        el("span", fmt.ci(agg), class_="ci"),
        el("div", f"n={agg.n_scored}", class_="model-spec"),
    ]
    return td(join(content), True, data_value_of=name)


# --- confusion matrices ----------------------------------------------------------------------


def confusion_tables(report: RunReport) -> Markup:
    """Per variant, reference label (rows) by predicted label (columns); answers with no label
    in them have their own column. Every variant's table has the same rows and columns."""
    matrices = {v.variant: v.confusion for v in report.variants if v.confusion}
    references = sorted({ref for m in matrices.values() for ref in m})
    predicted = sorted({p for m in matrices.values() for row in m.values() for p in row})
    columns = [*sorted(set(predicted) - {NO_LABEL} | set(references)), NO_LABEL]
    tables = [
        _confusion(variant, matrix, references, columns) for variant, matrix in matrices.items()
    ]
    return el("div", tables, class_="confusions")


def _confusion(
    variant: str, matrix: dict[str, dict[str, int]], references: list[str], columns: list[str]
) -> Markup:
    head = el(
        "tr",
        [
            el("th", "reference ↓ predicted →", scope="col"),
            *(el("th", c, scope="col", class_="num") for c in columns),
        ],
    )
    rows = [
        el(
            "tr",
            [
                el("th", ref, scope="row", class_="row"),
                *(_count(matrix.get(ref, {}).get(c, 0), ref, c) for c in columns),
            ],
            data_reference=ref,
        )
        for ref in references
    ]
    table = el("table", [el("thead", head), el("tbody", rows)], class_="confusion")
    caption = el("h3", variant)
    return el("div", [caption, el("div", table, class_="table-wrap")], data_variant=variant)


def _count(n: int, reference: str, predicted: str) -> Markup:
    tone = "hit" if reference == predicted else "miss" if n else "zero"
    return el("td", str(n), class_="num " + tone, data_predicted=predicted)


# --- paired comparison matrix ----------------------------------------------------------------


def comparison_matrix(report: RunReport) -> Markup:
    """Cell (row R, column C): mean score of R minus C on the items both answered."""
    names = [v.variant for v in report.variants]
    head = el(
        "tr", [el("th", "row − column"), *(el("th", n, class_="name", scope="col") for n in names)]
    )
    rows = [
        el(
            "tr",
            [
                el("th", r, class_="row", scope="row"),
                *(_cell(report.comparisons, r, c) for c in names),
            ],
        )
        for r in names
    ]
    table = el("table", [el("thead", head), el("tbody", rows)], class_="matrix")
    return el("div", table, class_="table-wrap")


def oriented(pairs: list[PairRow], row: str, col: str) -> PairedComparison | None:
    """The comparison as row minus column (PairRow's diff is b - a)."""
    for pair in pairs:
        if (pair.a, pair.b) == (col, row):
            return pair.comparison
        if (pair.a, pair.b) == (row, col):
            c = pair.comparison
            flip = {"diff": _neg(c.diff), "ci_low": _neg(c.ci_high), "ci_high": _neg(c.ci_low)}
            return c.model_copy(update={**flip, "mean_a": c.mean_b, "mean_b": c.mean_a})
    return None


def _neg(value: float | None) -> float | None:
    return None if value is None else -value


def _cell(pairs: list[PairRow], row: str, col: str) -> Markup:
    if row == col:
        return el("td", "—", class_="cell self")
    c = oriented(pairs, row, col)
    if c is None or c.diff is None:
        return el("td", "no shared items", class_="cell muted")
    ci = "" if c.ci_low is None else f"[{c.ci_low:+.3f}, {c.ci_high or 0:+.3f}]"
    verdict = "significant" if c.significant else "within noise"
    sub = f"{ci} p={fmt.p_value(c.p_value)} · n={c.n} · {verdict}"
    tone = "" if not c.significant else " win" if c.diff > 0 else " loss"
    title = f"{row} minus {col}: {c.method}"
    content = [el("span", fmt.signed(c.diff), class_="d"), el("span", sub, class_="sig")]
    return el("td", content, class_="cell" + tone, title=title)
