"""Terminal rendering of plans and reports (rich tables), or JSON with --json."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from assay.analysis.baseline import MajorityBaseline
from assay.analysis.results import RunReport
from assay.analysis.summary import VariantSummary
from assay.benchmark.adaptive import round_ends
from assay.benchmark.plan import Estimate, RunPlan
from assay.cli.console import cli_console
from assay.cli.render_decisions import decisions_table
from assay.cli.render_endpoints import endpoints_table, worth_showing
from assay.cli.untrusted import visible
from assay.scoring.stats import Aggregate
from assay.scoring.unscored import UNSCORED_CAUSES
from assay.store.runstore import ResultRecord
from assay.text import natural_key

console = cli_console()
err_console = cli_console(stderr=True)


def usd(value: float | None, digits: int = 4) -> str:
    return "unknown" if value is None else f"${value:,.{digits}f}"


def num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def score_cell(agg: Aggregate | None) -> str:
    if agg is None or agg.mean is None:
        return "no score"
    ci = "" if agg.ci_low is None else f" [{agg.ci_low:.2f}, {agg.ci_high:.2f}]"
    return f"{agg.mean:.3f}{ci}"


def preflight(plan: RunPlan, estimates: list[Estimate], run_id: str) -> None:
    shard = f" (shard {plan.config.shard})" if plan.config.shard else ""
    table = Table(
        title=f"Plan for run {run_id}{shard}: {plan.n_samples} samples x "
        f"{plan.config.repeats} repeat(s)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("calls to", min_width=min(40, max(len(v.key) for v in plan.variants)))
    for col in ("calls", "est. input\ntokens", "max output\ntokens", "est. cost ≤"):
        table.add_column(col, justify="right", no_wrap=True)
    for e in estimates:
        table.add_row(
            Text(visible(e.label) + _batch_note(e)),  # a models config's label is untrusted
            f"{e.calls:,}",
            f"{e.input_tokens:,}",
            f"{e.max_output_tokens:,}",
            usd(e.cost_usd),
        )
    err_console.print(table)
    if any(e.batch for e in estimates):
        err_console.print(
            "Batch: those requests go to the providers' batch APIs, priced at the batch price "
            "(answers within 24 h; Ctrl-C leaves them running, --resume collects them)."
        )
    plan_warnings(plan)


def _batch_note(estimate: Estimate) -> str:
    if not estimate.batch:
        return ""
    if not estimate.batch_discount:
        return " (batch; no batch price known: standard price)"
    return f" (batch -{estimate.batch_discount * 100:.0f}%)"


def plan_warnings(plan: RunPlan) -> None:
    """What the run sends other than the files say (repaired rows, slots with a brace missing),
    and a judge whose largest request would not fit its context."""
    from assay.scoring.judge_fit import judge_fit_warnings

    prompts = {v.prompt.path: v.prompt for v in plan.variants}.values()
    for line in [*plan.dataset.warnings, *(w for p in prompts for w in p.warnings)]:
        warn(line)
    judge, max_tokens = plan.config.scoring.judge, plan.config.params.max_tokens
    for line in judge_fit_warnings(judge, plan.iter_samples(), max_tokens):
        warn(line)
    if plan.config.decision.adaptive:
        err_console.print(adaptive_plan_line(plan))


def adaptive_plan_line(plan: RunPlan) -> str:
    rounds = round_ends(plan.n_samples)
    return (
        f"Adaptive: {len(rounds)} rounds of about {rounds[0] if rounds else 0} samples in a "
        f"seeded order; a variant settled at margin {plan.config.decision.margin:g} gets no "
        "more calls, so the figures above are the most the run can spend."
    )


def warn(line: str) -> None:
    err_console.print(Text(f"warning: {visible(line)}", style="yellow"), soft_wrap=True)


def shard_lines(report: RunReport) -> None:
    """A shard's run says which rows it holds; a merged run, which runs it joined."""
    if report.shard is not None:
        shard = report.shard
        console.print(
            f"Shard {shard}: {report.dataset.n_samples:,} of the run's "
            f"{shard.rows_all_shards:,} rows (join the {shard.count} shards with: assay merge)"
        )
    if report.merged_from:
        console.print(
            f"Merged from {len(report.merged_from)} shard runs: "
            + ", ".join(visible(i) for i in report.merged_from)
        )


def run_report(report: RunReport, as_json: bool = False) -> None:
    if as_json:
        print(report.to_json())
        return
    shard_lines(report)
    console.print(models_table(report.variants, report.primary_metric))
    calls_line(report.variants)
    judge_unscored_lines(report.judge_unscored, report.run_id)
    if report.majority_baseline is not None:
        console.print(baseline_line(report.majority_baseline))
    if len(report.metric_names()) > 1:
        console.print(metrics_table(report))
    for variant in report.variants:
        if variant.confusion and len(report.variants) <= 4:
            console.print(confusion_table(variant.variant, variant.confusion))
    if report.comparisons:
        console.print(comparisons_table(report))
    if report.decisions is not None and len(report.variants) > 1:
        console.print(decisions_table(report.decisions))
    if worth_showing(report.endpoints):
        console.print(endpoints_table(report.endpoints))
    fronts = (("$/1k", report.pareto_quality_cost), ("p50", report.pareto_quality_latency))
    for axis, front in fronts:
        line = f" (quality vs {axis}): {visible(', '.join(front)) or '–'}"
        console.print(Text.assemble(("Pareto front", "bold"), line))
    choice, _, rest = visible(report.recommendation).partition(". ")
    console.print(
        Text.assemble((choice.removesuffix(".") + ".", "bold"), f" {rest}" if rest else "")
    )
    if report.stopped_reason:
        # --max-cost covers the whole run, resumes included: continuing needs a higher one
        raise_budget = (
            " --max-cost HIGHER" if "cost budget" in report.stopped_reason.lower() else ""
        )
        # The reason may quote a server's error body: neither markup nor control codes.
        console.print(
            Text.assemble(
                ("Stopped early", "yellow"),
                f": {visible(report.stopped_reason)}. "
                f"Continue with: assay run --resume {report.run_id}{raise_budget}",
            )
        )
    console.print(
        f"Run {report.run_id}: {report.status}; this run spent {usd(report.spent_usd)}. "
        f"Details: assay show {report.run_id}"
    )


def calls_line(variants: list[VariantSummary]) -> None:
    """How many responses the run has and how many came from the cache (not re-run)."""
    calls = sum(v.n_requests for v in variants)
    cached = sum(v.cached_requests for v in variants)
    console.print(f"{calls:,} responses, {cached:,} from cache", highlight=False)


def judge_unscored_lines(causes: dict[str, int], run_id: str) -> None:
    """Why judgements are missing, counted by cause, each with what to change."""
    if not causes:
        return
    parts = ", ".join(f"{n:,} {_cause_label(cause)}" for cause, n in causes.items())
    console.print(
        Text.assemble(("judge", "bold"), f": {sum(causes.values()):,} unscored — {parts}")
    )
    for cause in causes:
        known = UNSCORED_CAUSES.get(cause)
        if known is not None:
            console.print(Text(f"  hint ({known.label}): {known.hint}"), soft_wrap=True)
    console.print(f"  the judge's replies: assay show {run_id} --samples --failures")


def _cause_label(cause: str) -> str:
    known = UNSCORED_CAUSES.get(cause)
    return known.label if known is not None else visible(cause)


def models_table(variants: list[VariantSummary], primary: str) -> Table:
    has_judge = primary == "judge"
    self_host = any(v.self_hosting_cost_per_1k_usd is not None for v in variants)
    table = Table(
        title=Text(f"Results (score = {primary}, mean with 95% CI)", style="table.title"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=_join_captions(_cached_caption(variants), _batch_caption(variants)),
        caption_justify="left",
    )
    columns = [
        "model",
        "score\n[95% CI]",
        "n ok/\nuns/err",
        "$ per\n1k req",
        *(["self-host\n$/1k"] if self_host else []),
        *(["judge $"] if has_judge else []),
        "p50/p95\nms",
        "out\ntok/s",
        "tokens\nin/out",
    ]
    widest = min(40, max([len(v.variant) for v in variants] + [5]))
    for col in columns:
        if col == "model":
            table.add_column(col, min_width=widest)
        else:
            table.add_column(col, justify="right", no_wrap=True)
    for v in variants:
        agg = v.score
        counts = f"{agg.n_scored}/{agg.n_unscored}/{v.n_errors}" if agg else f"0/0/{v.n_errors}"
        row: list[Text | str] = [
            Text(visible(v.variant)),
            score_cell(agg),
            counts,
            usd(v.cost_per_1k_usd, 3),
            *([usd(v.self_hosting_cost_per_1k_usd, 3)] if self_host else []),
            *([usd(v.judge_cost_usd)] if has_judge else []),
            f"{num(v.latency_p50_ms)}/{num(v.latency_p95_ms)}",
            num(v.output_tokens_per_s, "{:,.1f}"),
            f"{num(v.input_tokens_per_request)}/{num(v.output_tokens_per_request)}",
        ]
        table.add_row(*row)
    return table


def baseline_line(baseline: MajorityBaseline) -> Text:
    """The label metric's reference point, beside the models (the answer is data: visible)."""
    return Text.assemble(
        (f"Baseline ({visible(baseline.metric)})", "bold"),
        f": always '{visible(baseline.answer)}' scores {baseline.score:.3f} "
        f"(the most common reference label, n={baseline.n})",
    )


def metrics_table(report: RunReport) -> Table:
    """Every metric's mean and 95% CI per variant (the models table shows the primary one)."""
    table = Table(
        title=Text("All metrics (mean with 95% CI)", style="table.title"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    names = report.metric_names()
    table.add_column("model")
    for name in names:
        table.add_column(Text(visible(name)), justify="right")  # a metric spec is not markup
    for v in report.variants:
        cells = [score_cell(v.metrics.get(name)).replace(" [", "\n[") for name in names]
        table.add_row(Text(visible(v.variant)), *cells)
    return table


def _batch_caption(variants: list[VariantSummary]) -> str | None:
    """Which variants went through a batch API, at what discount (their $/1k is at it)."""
    parts = [
        f"{visible(v.variant)} ({v.batch_requests:,} replies, {_batch_price_text(v)})"
        for v in variants
        if v.batch_requests
    ]
    if not parts:
        return None
    return "batch API: " + ", ".join(parts) + "; no latency measured for batch replies"


def _batch_price_text(v: VariantSummary) -> str:
    if not v.batch_discount:
        return "standard price: no batch price known"
    return f"-{v.batch_discount * 100:.0f}% batch price"


def _join_captions(*captions: str | None) -> str | None:
    return "\n".join(c for c in captions if c) or None


def _cached_caption(variants: list[VariantSummary]) -> str | None:
    cached = sum(v.cached_requests for v in variants)
    if not cached:
        return None
    return (
        f"p50/p95 and tok/s: calls measured in this run ({cached:,} cached, "
        "latency not re-measured)"
    )


def confusion_table(variant: str, matrix: dict[str, dict[str, int]]) -> Table:
    table = Table(
        title=Text(f"Confusion for {visible(variant)} (rows expected, columns predicted)"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    predicted = sorted({p for row in matrix.values() for p in row})
    table.add_column("expected")
    for name in predicted:
        table.add_column(Text(visible(name)), justify="right")
    for expected, row in sorted(matrix.items()):  # labels are data: shown, never obeyed
        table.add_row(Text(visible(expected)), *(str(row.get(p, 0)) for p in predicted))
    return table


def comparisons_table(report: RunReport) -> Table:
    table = Table(
        title="Paired comparisons (B − A on the same samples, each pair on its own)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for col in ("A", "B", "n", "diff", "95% CI", "p", "significant"):
        table.add_column(col, justify="left" if col in "AB" else "right")
    for row in report.comparisons:
        c = row.comparison
        ci = "–" if c.ci_low is None else f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        table.add_row(
            row.a,
            row.b,
            str(c.n),
            num(c.diff, "{:+.3f}"),
            ci,
            num(c.p_value, "{:.3g}"),
            "yes" if c.significant else "no",
        )
    return table


def samples_table(results: Sequence[ResultRecord], primary: str, failures_only: bool) -> None:
    table = Table(title="Responses", title_justify="left", show_lines=True)
    for col in ("sample", "variant", "response", primary, "reason"):
        table.add_column(Text(col), overflow="fold")  # the metric's name is not markup
    ordered = sorted(
        results, key=lambda r: (natural_key(r.sample_id), r.sample_id, r.variant, r.repeat)
    )
    for r in ordered:
        score = r.scores.get(primary)
        if failures_only and score is not None and score.is_scored and (score.value or 0) >= 1:
            continue
        text = r.completion.text if r.completion else f"[error] {r.error}"
        value = "–" if score is None or score.value is None else f"{score.value:.2f}"
        reason = "" if score is None else (score.reason or score.status)
        # Model output, error bodies and ids are untrusted text: Text() keeps rich from reading
        # it as markup, visible() keeps the terminal from obeying its control codes.
        table.add_row(
            Text(visible(r.sample_id)),
            Text(visible(r.variant)),
            Text(visible(text[:300])),
            value,
            Text(visible(reason[:200])),
        )
    console.print(table)
