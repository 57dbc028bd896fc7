"""``assay judge check``: measure a judge against human labels before optimizing against it.

Only typer is imported at module level; everything else loads inside the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from assay.cli.options import grouped

if TYPE_CHECKING:
    from rich.table import Table

    from assay.scoring.judge_check import JudgeCheckReport

CHECK_HELP = (
    "Check a judge against human labels: agreement, Cohen's kappa and a verdict.\n\n"
    'DATA is JSONL, one {"input": ..., "response": ..., "reference"?: ..., "human": 4} per '
    'line ("human": "pass" or "fail" for a pass/fail rubric).\n\n'
    'With --labels the labels come from a second JSONL file of {"id": ..., "human": ...} '
    "rows, joined to DATA by id.\n\n"
    'Rows with "response_a", "response_b" and "human": "A", "B" or "tie" check the pairwise '
    "judge, which is asked in both orders."
)


def register(app: typer.Typer) -> None:
    """Add the ``judge`` command group to ``app``."""
    judge_app = typer.Typer(
        help="Check an LLM judge before you trust its scores.", no_args_is_help=True
    )
    judge_app.command("check", help=CHECK_HELP)(check_command)
    app.add_typer(judge_app, name="judge")


@dataclass
class CheckArgs:
    data: Path = typer.Argument(..., help="JSONL of responses with human labels.")
    judge: str = typer.Option(
        ..., "--judge", help="Judge model spec; several, comma-separated, form a panel."
    )
    criteria: Path = typer.Option(..., "--judge-criteria", help="The rubric (markdown or text).")
    labels: Path | None = typer.Option(
        None, "--labels", help="JSONL of {id, human} rows, joined to DATA by id."
    )
    base_url: str | None = typer.Option(
        None, "--judge-base-url", help="OpenAI-compatible endpoint for the judge."
    )
    repeats: int = typer.Option(1, "--judge-repeats", min=1, help="Judgements per item.")
    dimensions: str | None = typer.Option(
        None, "--judge-dimensions", help="Criteria scored separately, comma-separated."
    )
    max_tokens: int = typer.Option(512, "--judge-max-tokens", min=16, help="Judge reply limit.")
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")
    store: Path | None = typer.Option(None, "--store", help="Run store (holds the cache).")


@dataclass
class CheckFlags:
    args: CheckArgs


@grouped
def check_command(flags: CheckFlags) -> None:
    from assay.cli.options import judge_config
    from assay.jobs import JudgeCheckJob

    a = flags.args
    config = judge_config(a.judge, a.criteria, a.base_url, a.dimensions, a.repeats)
    config = config.model_copy(update={"max_tokens": a.max_tokens})
    report = JudgeCheckJob.prepare(config, a.data, a.labels, a.store).execute()
    if a.as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    _print_report(report)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _report_table(report: JudgeCheckReport) -> Table:
    from rich.table import Table

    a = report.agreement
    table = Table(title=f"Judge check: {', '.join(report.judge)} ({report.scale} scale)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("labelled items", str(a.n))
    table.add_row("scored by the judge", str(a.n_scored))
    table.add_row("unscored", f"{a.n_unscored} ({_percent(a.unscored_share)})")
    table.add_row("exact agreement", _percent(a.exact))
    if a.adjacent is not None:
        table.add_row("adjacent agreement (±1)", _percent(a.adjacent))
    kappa = "undefined" if a.kappa is None else f"{a.kappa:.2f}"
    if a.kappa_ci is not None:
        kappa += f" [{a.kappa_ci[0]:.2f}, {a.kappa_ci[1]:.2f}]"
    name = "weighted kappa (quadratic)" if a.kappa_weights == "quadratic" else "Cohen's kappa"
    table.add_row(name, kappa)
    if report.repeats > 1:
        stable = f"{_percent(report.repeat_stability)} of {report.n_repeat_items}"
        table.add_row(f"stable across {report.repeats} repeats", stable)
    if report.mode == "pairwise":
        table.add_row("order-consistent", _percent(report.order_consistency))
    cost = "unknown" if report.judge_cost_usd is None else f"${report.judge_cost_usd:.4f}"
    table.add_row("judge calls (cached)", f"{report.judge_calls} ({report.judge_cached_calls})")
    table.add_row("judge cost", cost)
    return table


def _print_report(report: JudgeCheckReport) -> None:
    from assay.cli.console import cli_console

    console = cli_console()
    console.print(_report_table(report))
    if report.n_unlabelled:
        console.print(f"{report.n_unlabelled} rows without a label were skipped.")
    reasons = [item.reason for item in report.items if item.judge is None and item.reason]
    if reasons:
        common = max(set(reasons), key=reasons.count)
        line = f"Unscored, most often ({reasons.count(common)}x): {common}"
        console.print(line, markup=False, highlight=False)
    colour = {"trustworthy": "green", "use with care": "yellow"}.get(report.verdict, "red")
    console.print(f"[bold {colour}]Verdict[/]: ", end="")
    console.print(report.verdict_line, markup=False, highlight=False)
