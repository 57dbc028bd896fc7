"""Terminal output of ``assay optimize`` and ``assay show`` for optimization runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from assay.cli.console import cli_console
from assay.cli.render import usd
from assay.cli.render_endpoints import endpoints_table, worth_showing
from assay.cli.untrusted import visible
from assay.optimizer.records import IterationRecord, OptimizeResult, result_headline
from assay.optimizer.selection import plan, plan_text, small_data_warning

if TYPE_CHECKING:
    from assay.optimizer.estimate import CallEstimate
    from assay.optimizer.loop import Prepared
    from assay.optimizer.per_model import PerModelReport
    from assay.store.runstore import RunStore

console = cli_console()
err_console = cli_console(stderr=True)


def _f(value: float | None, fmt: str = "{:.3f}") -> str:
    return "–" if value is None else fmt.format(value)


def preflight(prepared: Prepared, estimates: list[CallEstimate], run_id: str) -> None:
    s = prepared.split
    err_console.print(
        f"Run {run_id}: {len(prepared.dataset.samples)} rows -> train {len(s.train)}, "
        f"val {len(s.val)}, test {len(s.test)}"
        f"{' (stratified by label)' if s.stratified else ''}; strategy "
        f"{prepared.config.strategy}, up to {prepared.config.stop.max_iterations} iterations"
    )
    table = Table(
        title="Pre-flight estimate (worst case)", title_justify="left", box=box.SIMPLE_HEAD
    )
    for col in ("calls to", "calls ≤", "cost ≤"):
        table.add_column(col, justify="left" if col == "calls to" else "right")
    for row in estimates:
        table.add_row(Text(row.label), f"{row.calls:,}", usd(row.cost_usd))
    err_console.print(table)
    selection = plan(prepared.config.acceptance, len(s.val))
    err_console.print(Text(plan_text(selection)), soft_wrap=True)
    small = small_data_warning(selection)
    warnings = [*prepared.dataset.warnings, *prepared.prompt.warnings, *([small] if small else [])]
    for line in warnings:
        err_console.print(Text(f"warning: {visible(line)}", style="yellow"), soft_wrap=True)


class ConsoleReporter:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def phase(self, text: str) -> None:
        if not self.quiet:
            err_console.print(f"[dim]… {text}[/dim]")

    def iteration(self, record: IterationRecord) -> None:
        if self.quiet:
            return
        colour = {"accepted": "green", "rejected": "yellow"}.get(record.status, "cyan")
        line = Text(f"[{record.idx}] ", style="bold")
        line.append(record.status, style=colour)
        line.append(f"  train {_f(record.train_score)}  val {_f(record.val_candidate)}  ")
        line.append(visible(record.reason))  # may quote the reasoner's reply
        err_console.print(line)


def summary(result: OptimizeResult, output: Path | None, as_json: bool) -> None:
    if as_json:
        print(result.to_json())
        return
    headline = result.headline or result_headline(result)  # older runs stored no headline
    console.print(Text(visible(headline)), soft_wrap=True)  # one line, even when piped
    lines = [
        f"Dataset        : {result.data}  (train {result.split.train}, val {result.split.val},"
        f" test {result.split.test})",
        f"Model          : {result.model}  (reasoner {result.reasoning_model}, "
        f"strategy {result.strategy}, metric {result.metric})",
        f"Iterations     : {result.iterations} ({result.accepted} accepted); "
        f"stopped: {result.stopped_reason or 'finished'}",
        f"Spent          : {result.spend.calls} calls ({result.spend.cached_calls} cached), "
        f"{usd(result.spend.cost_usd) if result.spend.cost_known else 'unknown'}",
    ]
    for line in lines:  # the stop reason may quote a server's error body
        console.print(Text(visible(line)))
    console.print(scores_table(result))
    console.print(trajectory_table(result.trajectory))
    if worth_showing(result.endpoints):
        console.print(endpoints_table(result.endpoints))
    if output is not None:
        console.print(Text(f"Best prompt written to {output} (the prompt scored above)."))
    console.print(Text(f"Details: assay show {result.run_id}"))


def scores_table(result: OptimizeResult) -> Table:
    """Val and test side by side for both prompts; the last column is how much val flattered."""
    table = Table(title="Val and test", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("", "val", "test", "val - test"):
        table.add_column(col, justify="left" if not col else "right")
    base, final, g = result.baseline, result.final, result.gain
    for label, scores in (("starting prompt", base), ("best prompt", final)):
        val, test = scores.val.mean, scores.test.mean
        gap = val - test if val is not None and test is not None else None
        table.add_row(label, _f(val), f"{_f(test)} (n={scores.test.n_scored})", _f(gap, "{:+.3f}"))
    test_gain = (
        f"{_f(g.diff, '{:+.3f}')} [{_f(g.ci_low, '{:+.3f}')}, {_f(g.ci_high, '{:+.3f}')}] "
        f"{'significant' if g.significant else 'not significant'}"
    )
    val_gain = result.val_gain
    gain_gap = val_gain - g.diff if val_gain is not None and g.diff is not None else None
    table.add_row("gain", _f(val_gain, "{:+.3f}"), test_gain, _f(gain_gap, "{:+.3f}"))
    return table


def trajectory_table(records: list[IterationRecord]) -> Table:
    table = Table(title="Trajectory", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("#", "status", "train", "val", "gain", "bar", "reason"):
        numeric = col in ("#", "train", "val", "gain", "bar")
        table.add_column(col, justify="right" if numeric else "left")
    for r in records:
        table.add_row(
            str(r.idx),
            r.status,
            _f(r.train_score),
            _f(r.val_candidate),
            _f(r.gain, "{:+.3f}"),
            _bar(r),
            Text(visible(r.reason[:110])),
        )
    return table


def _bar(record: IterationRecord) -> str:
    if record.val_look is None:
        return "–"
    if record.bar is None:
        return "none"  # these val rows cannot reach the look's alpha
    return f"{record.bar:+.3f}"


def show_optimize(store: RunStore, run_id: str, as_json: bool) -> None:
    run = store.get_run(run_id)
    records = [IterationRecord.model_validate(r) for r in store.iterations(run_id)]
    if run.summary and "schema" in run.summary:
        result = OptimizeResult.model_validate(run.summary)
        summary(result, None, as_json)
    elif as_json:
        print("[" + ",".join(r.model_dump_json() for r in records) + "]")
        return
    else:
        console.print(Text(f"Run {run.id} ({run.status}): no final result yet"))
        console.print(trajectory_table(records))
    if not as_json:
        _accepted_changes(records)


def _accepted_changes(records: list[IterationRecord]) -> None:
    for r in records:
        if r.status != "accepted":
            continue
        console.print(
            Text(
                f"\nIteration {r.idx}: accepted (val gain {_f(r.gain, '{:+.3f}')}, "
                f"bar {_f(r.bar, '{:+.3f}')})",
                style="bold green",
            )
        )
        # The reasoner model wrote all three: shown, never obeyed by the terminal.
        console.print(Text(visible(f"Diagnosis: {r.diagnosis}")))
        console.print(Text(visible(f"Change: {r.explanation}")))
        diff = visible(r.diff or "(no diff)")
        console.print(Syntax(diff, "diff", theme="ansi_dark", word_wrap=True))


def per_model_summary(report: PerModelReport, as_json: bool) -> None:
    from assay.cli import render
    from assay.optimizer.per_model import as_run_report

    if as_json:
        print(report.to_json())
        return
    for m in report.models:
        sig = "significant" if m.gain.significant else "not significant"
        written = f"; best prompt -> {m.output}" if m.output else ""
        render.console.print(
            Text(
                f"{m.label}: test {render.num(m.baseline_test.mean, '{:.3f}')} -> "
                f"{render.num(m.final_test.mean, '{:.3f}')} ({sig}), "
                f"{m.iterations} iterations, run {m.run_id}{written}"
            )
        )
    render.console.print(render.models_table(report.variants, report.metric))
    if report.comparisons:
        render.console.print(render.comparisons_table(as_run_report(report)))
    fronts = (("$/1k", report.pareto_quality_cost), ("p50", report.pareto_quality_latency))
    for axis, front in fronts:
        render.console.print(Text(f"Pareto front (quality vs {axis}): {', '.join(front) or '–'}"))
    render.console.print(Text(f"Recommendation: {report.recommendation}"))
    render.console.print(
        Text("Each model is scored with its own best prompt on the same test rows.")
    )
