"""``assay report`` on an optimize run: the scores it recorded (val and test, with intervals and
the paired test of the gain), the trajectory, the best prompt and its change, each iteration's
change from its real parent, and the test rows the two prompts disagree on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from assay.report import fmt
from assay.store.runstore import RunStore
from tests.browser import chromium, watched_page
from tests.optimize_report_helpers import (
    BAD,
    GOOD,
    HEX64,
    PROMPT_KEY,
    XSS,
    OptRuns,
    attr_values,
    between,
    build_optimize_runs,
    disagreeing_rows,
    part,
    results_on_test,
    text_of,
)
from tests.run_helpers import assay


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> OptRuns:
    return build_optimize_runs(tmp_path_factory.mktemp("optimize-report"))


@pytest.fixture(scope="module")
def store(runs: OptRuns) -> RunStore:
    return RunStore.open(runs.store_dir)


@pytest.fixture(scope="module")
def report_file(runs: OptRuns) -> Path:
    out = runs.store_dir.parent / "optimize-report.html"
    proc = assay("report", runs.improved.run_id, "--store", str(runs.store_dir), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def page(report_file: Path) -> str:
    return report_file.read_text(encoding="utf-8")


def test_the_prompt_key_is_the_optimizers(runs: OptRuns) -> None:
    from assay.analysis.runs_compare import prompt_variant
    from assay.data.prompts import PromptTemplate
    from assay.optimizer.evaluate import variant_key

    prompt = PromptTemplate.from_text(GOOD)
    assert prompt_variant(prompt.hash) == variant_key(prompt)


def test_report_shows_start_and_final_on_val_and_test_with_ci_and_p(
    runs: OptRuns, page: str
) -> None:
    result = runs.improved
    scores = part(page, "optimize-result")
    for split, before, after in (
        ("val", result.baseline.val, result.final.val),
        ("test", result.baseline.test, result.final.test),
    ):
        row = between(scores, f'data-split="{split}"', "</tr>")
        starting = text_of(between(row, 'data-prompt="starting"', "</td>"))
        final = text_of(between(row, 'data-prompt="final"', "</td>"))
        assert starting.startswith(f"{fmt.score(before.mean)} {fmt.ci(before)}"), split
        assert final.startswith(f"{fmt.score(after.mean)} {fmt.ci(after)}"), split
        assert f"n = {after.n_scored}" in final
    g = result.gain
    change = text_of(between(scores, 'data-split="test"', "</tr>"))
    assert f"{fmt.signed(g.diff)} [{fmt.signed(g.ci_low)}, {fmt.signed(g.ci_high)}]" in change
    assert f"p = {fmt.p_value(g.p_value)}" in change
    sentence = text_of(between(scores, 'data-part="gain"', "</p>"))
    assert f"n = {g.n} paired rows" in sentence and "a significant change" in sentence
    assert g.significant and g.diff is not None and g.diff > 0


def test_trajectory_chart_draws_train_and_val_and_marks_each_outcome(
    runs: OptRuns, page: str
) -> None:
    records = runs.improved.trajectory
    chart = part(page, "trajectory")
    train = re.search(r'<polyline points="([^"]+)" class="train"', chart)
    val = re.search(r'<polyline points="([^"]+)" class="val"', chart)
    assert train and len(train.group(1).split()) == sum(r.train_score is not None for r in records)
    assert val and len(val.group(1).split()) == sum(r.val_candidate is not None for r in records)
    assert attr_values(chart, "data-status") == [r.status for r in records]
    for r in records[1:]:
        assert text_of(r.reason) in text_of(chart)  # the reason is in the marker's tooltip


def test_each_change_is_diffed_against_its_real_parent(runs: OptRuns, page: str) -> None:
    """Iterations 2 and 3 propose the same text from iteration 1: both show that change."""
    iterations = part(page, "iterations")
    blocks = iterations.split('class="iteration"')[1:]
    assert len(blocks) == len(runs.improved.trajectory) == 4
    for block in blocks[2:]:
        shown = text_of(block)
        assert "Change from its parent (iteration 1)" in shown
        assert f"-{GOOD}" in shown and f"+{BAD}" in shown
    assert "Change from its parent (the starting prompt)" in text_of(blocks[1])


def test_best_prompt_and_its_change_from_the_starting_one(runs: OptRuns, page: str) -> None:
    best = text_of(part(page, "best-prompt"))
    start = runs.improved.trajectory[0].prompt
    assert f"Final prompt (the one scored on test) {GOOD}" in best
    assert f"-{start}" in best and f"+{GOOD}" in best


def test_disagreements_are_the_test_rows_scored_differently(
    runs: OptRuns, store: RunStore, page: str
) -> None:
    result = runs.improved
    expected = disagreeing_rows(store, result)
    shown = part(page, "disagree")
    assert 0 < len(expected) < result.split.test
    assert set(attr_values(shown, "data-sample")) == expected
    assert f"{len(expected)} of {result.split.test} test rows" in text_of(shown)
    base = results_on_test(store, result.run_id, result.baseline.prompt_hash)
    final = results_on_test(store, result.run_id, result.final.prompt_hash)
    samples = store.samples(result.run_id)
    for sample_id in expected:
        block = text_of(between(shown, f'data-sample="{sample_id}"', "</details>"))
        reference = samples[sample_id].reference
        assert reference is not None and f"Reference {reference}" in block
        assert text_of(samples[sample_id].input_text()) in block
        for label, rows in (("Starting prompt", base), ("Final prompt", final)):
            completion = rows[sample_id].completion
            assert completion is not None
            score = rows[sample_id].scores["label"].value
            assert f"{label} {fmt.score(score)} {completion.text}" in block


def test_no_raw_hashes_none_or_unescaped_model_text(runs: OptRuns, page: str) -> None:
    section = between(page, 'data-part="optimize-result"', "<footer")
    assert not HEX64.search(section) and not PROMPT_KEY.search(section)
    assert not re.search(r"\bNone\b", text_of(section))
    assert XSS not in page  # the reasoner's explanation, escaped
    assert f"Change: {XSS} say it in one word" in text_of(part(page, "iterations"))


def test_a_run_without_a_rewrite_says_so(runs: OptRuns, tmp_path: Path) -> None:
    out = tmp_path / "flat.html"
    proc = assay("report", runs.flat.run_id, "--store", str(runs.store_dir), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    shown = out.read_text(encoding="utf-8")
    assert "no rewrite was accepted" in text_of(part(shown, "best-prompt"))
    assert "final prompt is the starting prompt" in text_of(part(shown, "disagree"))
    assert 'data-status="accepted"' not in part(shown, "trajectory")


def test_an_unfinished_run_says_how_to_continue(runs: OptRuns, store: RunStore) -> None:
    from tests.optimize_report_helpers import running_copy

    copy = running_copy(store, runs.improved.run_id, 2)
    store.set_status(copy, "interrupted")
    out = runs.store_dir.parent / "unfinished.html"
    proc = assay("report", copy, "--store", str(runs.store_dir), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    shown = text_of(out.read_text(encoding="utf-8"))
    resume = f"assay optimize --resume {copy}"
    assert f"ended interrupted before scoring on test. Continue with: {resume}" in shown
    assert "Best prompt so far" in shown and "Iterations so far 1" in shown


# --- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as context:
        yield context


@pytest.mark.browser
def test_report_in_a_browser(
    browser: Any, runs: OptRuns, store: RunStore, report_file: Path
) -> None:
    w = watched_page(browser)
    w.page.goto(report_file.as_uri())
    chart = w.page.locator('[data-part="trajectory"] svg')
    assert chart.is_visible() and chart.bounding_box()["height"] > 200
    marks = chart.locator("circle.status-pt")
    assert marks.count() == len(runs.improved.trajectory)
    assert "Iteration 1 (accepted)" in marks.nth(1).locator("title").text_content()
    rows = w.page.locator("details.disagreement")
    assert rows.count() == len(disagreeing_rows(store, runs.improved))
    first = rows.first
    final_output = first.locator('.output[data-prompt="final"] .resp')
    assert not final_output.is_visible()  # collapsed until opened
    first.locator("summary").click()
    assert final_output.is_visible() and final_output.inner_text().strip()
    assert first.locator('.output[data-prompt="starting"] .resp').is_visible()
    seen = w.page.locator("main").inner_text()
    assert not HEX64.search(seen) and not PROMPT_KEY.search(seen)
    assert not re.search(r"\bNone\b", seen)
    assert w.page.evaluate("window.__xss") is None
    assert w.problems == []
    w.page.close()
