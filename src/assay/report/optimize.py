"""The sections of an optimize run (report file and dashboard page), from its typed records.

What the run stored is shown, never recomputed: the starting and the final prompt on
validation and test (means with their intervals), the paired test of the gain on test, the
trajectory, the best prompt with its change from the starting one, the test rows where the two
prompts disagree, and every iteration with its reason and its change from its real parent.
"""

from __future__ import annotations

import difflib

from assay.optimizer.records import IterationRecord, OptimizeResult, headline_verdict
from assay.report import fmt
from assay.report.data import RunView
from assay.report.html import Markup, el, join
from assay.report.optimize_chart import has_scores, trajectory_chart
from assay.report.optimize_data import OptimizeView, parent_record
from assay.report.optimize_samples import disagreements_part
from assay.scoring.stats import Aggregate

__all__ = ["optimize_section", "prompt_diff", "trajectory_chart"]

STATUS_TONE = {"baseline": "mid", "accepted": "good", "rejected": "warn"}


def optimize_section(view: RunView) -> Markup:
    data = view.optimize
    if data is None:
        return el("p", "No optimization record for this run.", class_="muted")
    return join(
        [
            *_callouts(view, data),
            _card("Result", _result_part(data), "optimize-result"),
            _card("Trajectory", _trajectory_part(data), "trajectory"),
            _card("Best prompt", _best_prompt_part(data), "best-prompt"),
            _card("Test samples where the prompts disagree", disagreements_part(data), "disagree"),
            _card("Iterations", _iterations_part(data), "iterations"),
        ]
    )


def _card(title: str, body: Markup, part: str) -> Markup:
    return el("section", [el("h2", title), body], class_="card", data_part=part)


def _callouts(view: RunView, data: OptimizeView) -> list[Markup]:
    run = view.run
    if data.result is not None:
        return []
    if run.status == "running":
        text = "This run is still running: the final scores on test appear when it ends."
    else:
        text = (
            f"This run ended {run.status} before scoring on test. Continue with: "
            f"assay optimize --resume {run.id}"
        )
    return [el("div", el("p", text), class_="callout warn")]


# --- the result --------------------------------------------------------------------------------


def _result_part(data: OptimizeView) -> Markup:
    result = data.result
    if result is None:
        return join([_progress_overview(data), _unreadable_note(data)])
    return join(
        [
            el("p", gain_sentence(result), class_="lead", data_part="gain"),
            el("div", _scores_table(result), class_="table-wrap"),
            el("p", _SCORES_NOTE.format(method=result.gain.method), class_="note"),
            _overview(result),
            _unreadable_note(data),
        ]
    )


def gain_sentence(result: OptimizeResult) -> str:
    g, base, final = result.gain, result.baseline.test, result.final.test
    if g.diff is None:
        return "The two prompts share no scored test row: no comparison on test."
    rel = "" if result.relative_gain is None else f" ({result.relative_gain:+.0%})"
    verdict = "a significant change" if g.significant else "not a significant change"
    promised = ""
    if result.val_gain is not None:
        promised = (
            f" Validation, which chose the prompt, had shown {fmt.signed(result.val_gain)}; "
            f"the final prompt's val → test gap is {fmt.signed(result.val_test_gap)}."
        )
    return (
        f"{headline_verdict(result)}. On the held-out test split (n = {g.n} paired rows), the "
        f"final prompt scores {fmt.score(final.mean)} against {fmt.score(base.mean)} for the "
        f"starting prompt: {fmt.signed(g.diff)}{rel}, 95% CI of the gain "
        f"[{fmt.signed(g.ci_low)}, {fmt.signed(g.ci_high)}], p = {fmt.p_value(g.p_value)}: "
        f"{verdict}.{promised}"
    )


def _scores_table(result: OptimizeResult) -> Markup:
    head = ["", "Starting prompt", "Final prompt", "Change"]
    g = result.gain
    test_change = join(
        [
            el("strong", fmt.signed(g.diff)),
            el("span", f"[{fmt.signed(g.ci_low)}, {fmt.signed(g.ci_high)}]", class_="ci"),
            el("span", f" p = {fmt.p_value(g.p_value)}", class_="ci"),
        ]
    )
    val_change = _mean_change(result.baseline.val, result.final.val)
    rows = [
        _score_row("Validation", result.baseline.val, result.final.val, val_change, "val"),
        _score_row("Test (held out)", result.baseline.test, result.final.test, test_change, "test"),
        _gap_row(result),
    ]
    header = el("thead", el("tr", [el("th", h, scope="col") for h in head]))
    return el("table", [header, el("tbody", rows)], class_="opt-scores")


def _gap_row(result: OptimizeResult) -> Markup:
    """Val minus test for each prompt, and for the change: how much choosing on val flattered."""
    base, final = result.baseline, result.final
    val_gain, test_gain = result.val_gain, result.gain.diff
    change = val_gain - test_gain if val_gain is not None and test_gain is not None else None
    cells = [
        el("th", "Val → test gap", scope="row"),
        el("td", fmt.signed(_gap(base.val, base.test)), data_prompt="starting"),
        el("td", el("strong", fmt.signed(_gap(final.val, final.test))), data_prompt="final"),
        el("td", fmt.signed(change), data_prompt="change"),
    ]
    return el("tr", cells, data_split="gap")


def _gap(val: Aggregate, test: Aggregate) -> float | None:
    return val.mean - test.mean if val.mean is not None and test.mean is not None else None


def _mean_change(before: Aggregate, after: Aggregate) -> Markup:
    if before.mean is None or after.mean is None:
        return Markup(fmt.DASH)
    return el("strong", fmt.signed(after.mean - before.mean))


def _score_row(
    label: str, before: Aggregate, after: Aggregate, change: Markup, split: str
) -> Markup:
    cells = [
        el("th", label, scope="row"),
        el("td", _aggregate(before), data_prompt="starting"),
        el("td", _aggregate(after), data_prompt="final"),
        el("td", change, data_prompt="change"),
    ]
    return el("tr", cells, data_split=split)


def _aggregate(agg: Aggregate) -> Markup:
    parts = [el("strong", fmt.score(agg.mean))]
    if fmt.ci(agg):
        parts.append(el("span", fmt.ci(agg), class_="ci"))
    parts.append(el("span", f" n = {agg.n_scored}{_not_scored(agg)}", class_="ci"))
    return join(parts)


def _not_scored(agg: Aggregate) -> str:
    missing = agg.n_unscored + agg.n_errors
    return f" ({missing} without a score)" if missing else ""


def _overview(result: OptimizeResult) -> Markup:
    split = result.split
    spent = result.spend
    cost = fmt.usd(spent.cost_usd) if spent.cost_known else "unknown"
    items = [
        ("Model", result.model),
        ("Reasoning model", result.reasoning_model),
        ("Strategy", result.strategy),
        ("Metric", result.metric),
        ("Data", result.data),
        ("Split", f"train {split.train} · val {split.val} · test {split.test} (seed {split.seed})"),
        ("Iterations", f"{result.iterations} ({result.accepted} accepted)"),
        ("Stopped because", result.stopped_reason or "the loop finished"),
        ("Validation → test gap", fmt.signed(result.val_test_gap)),
        ("Spent", f"{spent.calls:,} calls ({spent.cached_calls:,} cached) · {cost}"),
    ]
    return _meta(items)


def _progress_overview(data: OptimizeView) -> Markup:
    kept = [r for r in data.records if r.status in ("baseline", "accepted")]
    best_val = kept[-1].val_candidate if kept else None
    items = [
        ("Metric", data.metric),
        ("Iterations so far", str(max(0, len(data.records) - 1))),
        ("Accepted", str(sum(r.status == "accepted" for r in data.records))),
        ("Best on validation so far", fmt.score(best_val)),
    ]
    return _meta(items)


def _meta(items: list[tuple[str, str]]) -> Markup:
    pairs = [el("div", [el("dt", k), el("dd", v)]) for k, v in items]
    return el("dl", pairs, class_="meta", style="margin: 12px 0;")


def _unreadable_note(data: OptimizeView) -> Markup:
    if not data.unreadable:
        return Markup("")
    text = f"{data.unreadable} iteration records were written by another version and are not shown."
    return el("p", text, class_="note")


# --- trajectory and best prompt ----------------------------------------------------------------


def _trajectory_part(data: OptimizeView) -> Markup:
    if not data.records:
        return el("p", "No iterations recorded yet.", class_="muted")
    if not has_scores(data.records):
        return el("p", "No iteration has a train or validation score yet.", class_="muted")
    return el("figure", [trajectory_chart(data.records), el("figcaption", _TRAJECTORY_CAPTION)])


def _best_prompt_part(data: OptimizeView) -> Markup:
    best, start = data.best_prompt, data.baseline_prompt
    if best is None:
        return el("p", "No prompt recorded yet.", class_="muted")
    title = "Final prompt (the one scored on test)" if data.result else "Best prompt so far"
    parts = [el("div", title, class_="field-label"), el("div", best, class_="diff best-prompt")]
    if start is None or start == best:
        parts.append(el("p", "It is the starting prompt: no rewrite was accepted.", class_="note"))
    else:
        parts.append(el("div", "Change from the starting prompt", class_="field-label"))
        parts.append(prompt_diff(start, best))
    return join(parts)


# --- iterations ----------------------------------------------------------------------------------


def _iterations_part(data: OptimizeView) -> Markup:
    if not data.records:
        return el("p", "No iterations recorded yet.", class_="muted")
    return el("div", [_iteration(data, r) for r in data.records], class_="iterations")


def _iteration(data: OptimizeView, record: IterationRecord) -> Markup:
    title = "Starting prompt" if record.status == "baseline" else f"Iteration {record.idx}"
    head = [
        el("h3", title),
        el("span", record.status, class_="pill " + STATUS_TONE.get(record.status, "mid")),
    ]
    if record.status != "baseline":
        head.append(el("span", f"{record.strategy} · from {data.label(record.parent_hash)}"))
    parts = [el("div", head, class_="toolbar")]
    if record.reason:
        parts.append(el("p", record.reason, class_="muted"))
    parts.append(_numbers(record))
    for label, value in (("Diagnosis", record.diagnosis), ("Change", record.explanation)):
        if value:
            parts.append(el("p", [el("span", label + ": ", class_="label"), value], class_="text"))
    parts.append(_prompt_block(data, record))
    return el("div", parts, class_="iteration", data_status=record.status)


def _numbers(record: IterationRecord) -> Markup:
    rows = [(label, value) for label, value in _number_rows(record) if value]
    if not rows:
        return Markup("")
    return _meta(rows)


def _number_rows(record: IterationRecord) -> list[tuple[str, str]]:
    r = record
    train = fmt.score(r.train_parent)
    if r.train_candidate is not None:
        train = f"{fmt.score(r.train_parent)} → {fmt.score(r.train_candidate)} (parent → this)"
    return [
        ("Train batch", train if r.train_score is not None else ""),
        ("Validation", _known(r.val_candidate, fmt.score(r.val_candidate))),
        ("Best on validation before", _known(r.val_best_before, fmt.score(r.val_best_before))),
        ("Validation gain", _known(r.gain, _gain_text(r))),
        ("Pairwise win rate", _known(r.win_rate, f"{fmt.score(r.win_rate)} ({r.duels} duels)")),
        ("Phase", f"{r.phase} · {r.phase_reason}" if r.phase is not None else ""),
        ("Examples shown", str(r.examples_shown) if r.examples_shown else ""),
        ("Calls so far", f"{r.spend.calls:,}" if r.spend.calls else ""),
    ]


def _gain_text(r: IterationRecord) -> str:
    """The gain and the bar it faced (older runs recorded a standard error instead)."""
    if r.val_look is None:
        return f"{fmt.signed(r.gain)} (noise {fmt.score(r.noise)})"
    bar = "no bar (too few rows differ)" if r.bar is None else f"bar {fmt.signed(r.bar)}"
    return (
        f"{fmt.signed(r.gain)} ({bar}: {r.val_candidates} candidate(s), {r.val_rows} val rows, "
        f"alpha {(r.alpha or 0.0):.3g} at val look {r.val_look})"
    )


def _known(value: float | None, text: str) -> str:
    return "" if value is None else text


def _prompt_block(data: OptimizeView, record: IterationRecord) -> Markup:
    prompt_view = el("details", [el("summary", "Prompt"), el("div", record.prompt, class_="diff")])
    parent = parent_record(data.records, record.parent_hash) if record.parent_hash else None
    if parent is None or parent.prompt == record.prompt:
        return prompt_view
    summary = f"Change from its parent ({data.label(record.parent_hash)})"
    change = el(
        "details",
        [el("summary", summary), prompt_diff(parent.prompt, record.prompt)],
        open=record.status == "accepted",
        class_="change",
    )
    return join([change, prompt_view])


def prompt_diff(before: str, after: str) -> Markup:
    """A unified line diff, every line escaped, additions and deletions marked."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=2)
    spans = []
    for row in lines:
        if row.startswith(("---", "+++")):
            continue
        cls = (
            "hunk"
            if row.startswith("@@")
            else "add"
            if row.startswith("+")
            else "del"
            if row.startswith("-")
            else None
        )
        spans.append(el("span", row + "\n", class_=cls) if cls else el("span", row + "\n"))
    return el("div", spans, class_="diff")


_SCORES_NOTE = (
    "Means of the primary metric with 95% bootstrap intervals, as the run recorded them. The "
    "gain on test is paired by row ({method}). Validation chose the final prompt, so its change "
    "is shown without a test: only the held-out test split gives an unbiased estimate."
)
_TRAJECTORY_CAPTION = (
    "Score per iteration: the train batch (grey) and the validation split (blue). Each marker is "
    "an iteration's outcome: the starting prompt, an accepted rewrite (green) or a rejected one "
    "(orange); hover a marker for the reason. Rejected rewrites may have no validation score "
    "(they failed on the train batch first)."
)
