"""The dashboard with optimize runs: the runs list, the run page (the same sections as the
report), live progress (phase and call budget) and the compare page, through the real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from assay.report import fmt
from assay.store.runstore import RunStore
from assay.ui import make_server
from assay.ui.server import DashboardServer
from tests.browser import chromium, expect, watched_page
from tests.optimize_report_helpers import (
    HEX64,
    MAX_CALLS,
    MAX_ITERATIONS,
    PROMPT_KEY,
    OptRuns,
    add_record,
    between,
    build_optimize_runs,
    disagreeing_rows,
    part,
    running_copy,
    text_of,
)
from tests.test_ui import get_json, request, serving


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> OptRuns:
    return build_optimize_runs(tmp_path_factory.mktemp("optimize-ui"))


@pytest.fixture(scope="module")
def store(runs: OptRuns) -> RunStore:
    return RunStore.open(runs.store_dir)


@pytest.fixture(scope="module")
def ui(runs: OptRuns) -> Iterator[DashboardServer]:
    yield from serving(make_server(runs.store_dir, port=0))


def get_page(server: DashboardServer, path: str) -> str:
    status, _, body = request(server, "GET", path)
    assert status == 200, path
    return body.decode()


def test_runs_list_shows_model_final_score_and_data(ui: DashboardServer, runs: OptRuns) -> None:
    listing = get_page(ui, "/")
    row = between(listing, f'data-run="{runs.improved.run_id}"', "</tr>")
    cells = [text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    models, best, data = cells[4], cells[5], cells[6]
    assert models == "compat/task"
    assert best == f"{runs.improved.final.test.mean:.3f} final prompt (test)"
    assert data == runs.data.name


def test_run_page_has_the_optimize_sections(ui: DashboardServer, runs: OptRuns) -> None:
    page = get_page(ui, f"/runs/{runs.improved.run_id}")
    result = runs.improved
    test_row = text_of(between(part(page, "optimize-result"), 'data-split="test"', "</tr>"))
    assert f"{fmt.score(result.final.test.mean)} {fmt.ci(result.final.test)}" in test_row
    assert f"p = {fmt.p_value(result.gain.p_value)}" in test_row
    assert 'class="status-pt"' in part(page, "trajectory")
    assert "Change from the starting prompt" in text_of(part(page, "best-prompt"))
    shown = text_of(between(page, 'data-part="optimize-result"', "</main>"))
    assert not HEX64.search(shown) and not PROMPT_KEY.search(shown)
    assert not re.search(r"\bNone\b", shown)


def test_progress_of_an_optimize_run_gives_its_phase_and_budget(
    ui: DashboardServer, runs: OptRuns, store: RunStore
) -> None:
    source = runs.improved
    baseline = get_json(ui, f"/api/runs/{running_copy(store, source.run_id, 0)}/progress")
    assert baseline["phase"].startswith("baseline")
    middle = running_copy(store, source.run_id, 2)
    live = get_json(ui, f"/api/runs/{middle}/progress")
    assert live["phase"] == f"iteration 2 of {MAX_ITERATIONS}"
    calls = source.trajectory[1].spend.calls
    assert (live["calls"], live["max_calls"]) == (calls, MAX_CALLS)
    assert live["fraction"] == pytest.approx(calls / MAX_CALLS)
    tested = running_copy(store, source.run_id, 4, tested=True)
    assert get_json(ui, f"/api/runs/{tested}/progress")["phase"].startswith("test")
    done = get_json(ui, f"/api/runs/{source.run_id}/progress")
    assert done["phase"] == "complete" and done["iterations"] == MAX_ITERATIONS


# --- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as context:
        yield context


@pytest.mark.browser
def test_run_page_in_a_browser(
    browser: Any, ui: DashboardServer, runs: OptRuns, store: RunStore
) -> None:
    w = watched_page(browser)
    w.page.goto(ui.url + f"runs/{runs.improved.run_id}")
    marks = w.page.locator('[data-part="trajectory"] svg circle.status-pt')
    assert marks.count() == len(runs.improved.trajectory)
    rows = w.page.locator("details.disagreement")
    assert rows.count() == len(disagreeing_rows(store, runs.improved))
    rows.first.locator("summary").click()
    assert rows.first.locator('.output[data-prompt="final"] .resp').is_visible()
    seen = w.page.locator("main").inner_text()
    assert not HEX64.search(seen) and not PROMPT_KEY.search(seen)
    assert not re.search(r"\bNone\b", seen)
    assert w.page.evaluate("window.__xss") is None
    assert w.problems == []
    w.page.close()


@pytest.mark.browser
def test_live_progress_shows_phase_and_calls_then_reloads(
    browser: Any, ui: DashboardServer, runs: OptRuns, store: RunStore
) -> None:
    source = runs.improved
    copy = running_copy(store, source.run_id, 1)
    w = watched_page(browser)
    w.page.goto(ui.url)
    listed = w.page.locator(f'tr[data-run="{copy}"] .progress-label')
    calls = source.trajectory[0].spend.calls
    expect(listed).to_contain_text(f"iteration 1 of {MAX_ITERATIONS} · {calls} / 2,000 calls")
    w.page.goto(ui.url + f"runs/{copy}")
    label = w.page.locator('[data-part="live"] .progress-label')
    expect(label).to_contain_text(f"iteration 1 of {MAX_ITERATIONS} · {calls} / 2,000 calls")
    assert "results" not in label.inner_text()
    record = add_record(store, source.run_id, copy, 1)
    expect(label).to_contain_text(
        f"iteration 2 of {MAX_ITERATIONS} · {record.spend.calls} / 2,000 calls", timeout=6000
    )
    width = w.page.locator('[data-part="live"] .progress > span').evaluate("e => e.style.width")
    assert width == f"{round(100 * record.spend.calls / MAX_CALLS)}%"
    store.set_status(copy, "interrupted")
    w.page.wait_for_selector('[data-part="live"]', state="detached", timeout=6000)
    assert "assay optimize --resume" in w.page.locator("main").inner_text()
    assert w.problems == []
    w.page.close()


@pytest.mark.browser
def test_compare_page_with_two_optimize_runs(
    browser: Any, ui: DashboardServer, runs: OptRuns
) -> None:
    w = watched_page(browser)
    w.page.goto(ui.url + "compare")
    options = w.page.locator('select[name="a"] option').all_inner_texts()
    assert any(runs.flat.run_id in o and "optimize" in o for o in options)
    w.page.select_option('select[name="a"]', runs.flat.run_id)
    w.page.select_option('select[name="b"]', runs.improved.run_id)
    w.page.locator("form button[type=submit]").click()
    result = w.page.locator('[data-part="comparison"]')
    shown = result.inner_text()
    n = runs.improved.split.test
    assert f"on {n} paired test samples" in shown and "final prompt, compat/task" in shown
    assert "has variants" not in w.page.locator("main").inner_text()
    assert w.problems == []
    w.page.close()
