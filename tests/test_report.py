"""``assay report``: one self-contained HTML file with the same numbers as ``analyse()``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from assay.analysis.results import RunReport
from assay.analysis.run_analysis import analyse
from assay.report import fmt, render_report, write_report
from assay.report.data import dataset_samples, load_view
from assay.report.html import el, esc, json_island, safe_json
from assay.report.optimize import prompt_diff
from assay.report.samples import explorer_data
from assay.report.svg import linear_ticks, log_ticks
from assay.store.runstore import RunStore
from tests.browser import (
    SCREENSHOTS_ENV,
    XSS_IMG,
    XSS_SCRIPT,
    DemoRuns,
    build_demo_runs,
    chromium,
    screenshot,
    screenshot_dir,
    watched_page,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    return build_demo_runs(tmp_path_factory.mktemp("report-store"))


@pytest.fixture(scope="module")
def store(runs: DemoRuns) -> RunStore:
    return RunStore.open(runs.store_dir)


@pytest.fixture(scope="module")
def report_file(runs: DemoRuns, store: RunStore) -> Path:
    out = runs.store_dir.parent / f"{runs.store_dir.name}-r.html"  # never inside the store
    return write_report(store, [runs.bench, runs.judged, runs.optimize], out)


@pytest.fixture(scope="module")
def html(report_file: Path) -> str:
    return report_file.read_text(encoding="utf-8")


def failing_samples(store: RunStore, run_id: str) -> set[str]:
    """Samples where any variant scored below 1 or has no score: the 'Failures' filter."""
    out = set()
    for r in store.results(run_id):
        score = r.scores.get("label")
        if score is None or score.value is None or score.value < 1:
            out.add(r.sample_id)
    return out


# --- escaping and self-containment -----------------------------------------------------------


def test_text_is_escaped_and_markup_is_kept() -> None:
    assert el("p", "<b>x</b> & 'q'") == "<p>&lt;b&gt;x&lt;/b&gt; &amp; &#x27;q&#x27;</p>"
    assert el("div", [el("b", "ok"), "<i>"]) == "<div><b>ok</b>&lt;i&gt;</div>"
    assert 'title="&quot;&gt;&lt;script&gt;"' in el("span", "", title='"><script>')
    assert esc(None) == ""


def test_json_island_cannot_be_closed_by_the_data() -> None:
    data = {"text": "</script><script>alert(1)</script><!-- & \u2028"}
    island = json_island("x", data)
    body = island.removeprefix('<script type="application/json" id="x">').removesuffix("</script>")
    assert "<" not in body and ">" not in body and "&" not in body
    assert json.loads(body) == data
    assert "\\u003c/script\\u003e" in safe_json(data)


def test_report_is_self_contained(html: str) -> None:
    """Nothing to fetch: no external reference in any attribute, stylesheet or script."""
    assert "Content-Security-Policy" in html and "default-src &#x27;none&#x27;" in html
    assert not re.search(r"<(link|iframe|object|embed|img)\b", html)
    assert not re.search(r"\s(src|href|action|srcset|poster)=[\"']?(https?:)?//", html)
    assert "url(" not in html and "@import" not in html
    assert "fetch(" not in html and "XMLHttpRequest" not in html


def test_model_markup_never_appears_raw(html: str) -> None:
    assert XSS_SCRIPT not in html
    assert XSS_IMG not in html
    assert "window.__xss=3</script>" not in html  # the optimize explanation
    assert "&lt;script&gt;window.__xss=3&lt;/script&gt;" in html


# --- same numbers as analyse() ---------------------------------------------------------------


def model_row(html: str, variant: str) -> str:
    found = re.search(rf'<tr[^>]*data-variant="{re.escape(variant)}".*?</tr>', html, re.S)
    assert found, variant
    return found.group(0)


def row_cells(row: str) -> dict[str, list[str]]:
    """The text pieces of each ``data-metric`` cell of a models-table row, in order."""
    cells = re.findall(r'<td[^>]*data-metric="([^"]+)"[^>]*>(.*?)</td>', row, re.S)
    return {metric: re.findall(r">([^<]+)<", f">{inner}<") for metric, inner in cells}


CELL_TEXTS_JS = """e => {
  const walk = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  const out = [];
  while (walk.nextNode()) out.push(walk.currentNode.textContent);
  return out;
}"""


def expected_cells(report: RunReport) -> dict[str, dict[str, list[str]]]:
    """What each models-table cell must say, from analyse()'s numbers and formats written here
    (not the page's own formatting functions): score and interval to 3 decimals, dollars per
    1k requests to 3 decimals ("unknown" without a price), latencies in whole milliseconds."""
    out = {}
    for v in report.variants:
        s = v.score
        assert s is not None and s.mean is not None
        assert s.ci_low is not None and s.ci_high is not None, v.variant  # an interval to show
        assert v.self_hosting_cost_per_1k_usd is None  # no second line in the cost cell
        cost = "unknown" if v.cost_per_1k_usd is None else f"${v.cost_per_1k_usd:,.3f}"
        out[v.variant] = {
            "score": [f"{s.mean:.3f}", f"[{s.ci_low:.3f}, {s.ci_high:.3f}]"],
            "counts": [f"{s.n_scored} / {s.n_unscored} / {v.n_errors}"],
            "cost": [cost],
            "p50": [f"{v.latency_p50_ms:,.0f} ms"],
            "p95": [f"{v.latency_p95_ms:,.0f} ms"],
        }
    return out


def test_models_table_shows_the_numbers_of_analyse(
    runs: DemoRuns, store: RunStore, html: str
) -> None:
    report = analyse(store, runs.bench)
    expected = expected_cells(report)
    assert list(expected) == ["acc90", "acc60", "free", "mystery"]
    for variant, cells in expected.items():
        assert row_cells(model_row(html, variant)) == cells, variant
    mystery = expected["mystery"]
    assert mystery["cost"] == ["unknown"] and mystery["counts"] == ["19 / 0 / 1"]
    assert expected["free"]["cost"] == ["$0.000"]
    assert esc(report.recommendation) in html


def test_explorer_flags(runs: DemoRuns, store: RunStore) -> None:
    data = explorer_data(load_view(store, runs.bench))
    rows = {row["id"]: row for row in data["rows"]}
    assert len(rows) == 20 and data["variants"] == ["acc90", "acc60", "free", "mystery"]
    assert {i for i, row in rows.items() if row["failure"]} == failing_samples(store, runs.bench)
    xss = rows[runs.xss_sample]["cells"][0]
    assert XSS_SCRIPT in xss["text"]  # raw in the data: escaping happens where it is shown
    broken = rows[runs.error_sample]["cells"][3]
    assert broken["status"] == "error" and broken["text"] is None
    assert "scripted bad request" in broken["error"]
    assert rows[runs.error_sample]["reference"] in ("positive", "negative")


def test_judge_rationale_is_in_the_data(runs: DemoRuns, store: RunStore) -> None:
    data = explorer_data(load_view(store, runs.judged))
    assert data["metric"] == "judge"
    cell = data["rows"][0]["cells"][0]
    assert cell["rationale"] and "<i>judged</i>" in cell["raw"]
    assert ["label", 1.0] in cell["others"] or ["label", 0.0] in cell["others"]


def test_references_need_the_unchanged_data_file(
    tmp_path: Path, runs: DemoRuns, store: RunStore
) -> None:
    config = store.get_run(runs.bench).config
    assert len(dataset_samples(config)) > 20
    moved = config.model_copy(update={"data": str(tmp_path / "gone.jsonl")})
    assert dataset_samples(moved) == {}
    assert dataset_samples(config.model_copy(update={"dataset_sha256": "0" * 64})) == {}


def test_optimize_section_shows_trajectory_and_diff(html: str) -> None:
    assert 'class="val"' in html and 'class="train"' in html
    assert "Iteration 2" in html and "rejected" in html
    assert "+Ignore &lt;b&gt;markup&lt;/b&gt; &amp; sarcasm." in html


def test_prompt_diff_marks_lines() -> None:
    diff = prompt_diff("a\nb\n<c>", "a\nB\n<c>")
    assert '<span class="del">-b\n</span>' in diff
    assert '<span class="add">+B\n</span>' in diff
    assert "&lt;c&gt;" in diff


def test_axis_ticks() -> None:
    assert linear_ticks(0.4, 1.0) == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert log_ticks(0.001, 3) == [0.001, 0.01, 0.1, 1.0]
    assert log_ticks(0.004, 0.2) == [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    assert fmt.usd_tick(0.005) == "$0.005" and fmt.usd_tick(1000) == "$1,000"


def test_unknown_run_is_a_user_error(store: RunStore) -> None:
    from assay.errors import UserInputError

    with pytest.raises(UserInputError):
        render_report(store, ["no-such-run"])


# --- the command -----------------------------------------------------------------------------


def cli() -> typer.Typer:
    from assay.cli import report_cmds

    app = typer.Typer()
    app.callback()(lambda: None)
    report_cmds.register(app)
    return app


def test_report_command_writes_the_file(tmp_path: Path, runs: DemoRuns) -> None:
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        cli(), ["report", runs.bench[:-2], "-o", str(out), "--store", str(runs.store_dir)]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    assert f'data-run="{runs.bench}"' in out.read_text(encoding="utf-8")


def test_report_command_imports_only_typer_at_start_up() -> None:
    code = (
        "import sys, assay.cli.report_cmds as m; "
        "heavy = [n for n in ('assay.report', 'assay.ui', 'assay.benchmark.runner', 'numpy') "
        "if n in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as context:
        yield context


def section(runs: DemoRuns, run_id: str) -> str:
    return f'section.run[data-run="{run_id}"]'


@pytest.mark.browser
def test_report_opens_from_disk_with_the_numbers(
    browser: Any, report_file: Path, runs: DemoRuns, store: RunStore
) -> None:
    w = watched_page(browser)
    w.page.goto(report_file.as_uri())
    report = analyse(store, runs.bench)
    bench = w.page.locator(section(runs, runs.bench))
    for variant, cells in expected_cells(report).items():
        row = bench.locator(f'table.models tr[data-variant="{variant}"]')
        shown = {
            metric: row.locator(f'td[data-metric="{metric}"]').evaluate(CELL_TEXTS_JS)
            for metric in cells
        }
        assert shown == cells, variant
    chart = bench.locator('[data-part="cost and quality"] svg')
    assert chart.locator("circle.pt[data-variant]").count() == 4
    front = chart.locator("circle.pt.front[data-variant]")
    assert sorted(front.evaluate_all("els => els.map(e => e.dataset.variant)")) == sorted(
        report.pareto_quality_cost
    )
    latency = bench.locator('[data-part="latency"] svg').inner_html()
    for v in report.variants:
        assert v.latency_p50_ms is not None and v.latency_p95_ms is not None
        assert f"{v.latency_p50_ms:,.0f} · {v.latency_p95_ms:,.0f}" in latency
    assert w.page.evaluate("window.__xss") is None
    assert w.problems == []
    w.page.close()


@pytest.mark.browser
def test_sample_filters_and_search(
    browser: Any, report_file: Path, runs: DemoRuns, store: RunStore
) -> None:
    w = watched_page(browser)
    w.page.goto(report_file.as_uri())
    explorer = w.page.locator(section(runs, runs.bench)).locator(".explorer")
    samples = explorer.locator("article.sample")
    assert samples.count() == 20
    explorer.locator('button[data-filter="failures"]').click()
    assert samples.count() == len(failing_samples(store, runs.bench))
    ids = set(samples.evaluate_all("els => els.map(e => e.dataset.sample)"))
    assert ids == failing_samples(store, runs.bench)
    explorer.locator('button[data-filter="changes"]').click()
    spreads = [
        float(s.split()[-1]) for s in explorer.locator(".sample-head .muted").all_inner_texts()
    ]
    assert spreads and spreads == sorted(spreads, reverse=True)
    explorer.locator('button[data-filter="all"]').click()
    explorer.locator("input[type=search]").fill(runs.error_sample)
    assert samples.count() == 1
    assert "scripted bad request" in samples.first.inner_text()
    assert explorer.locator(".count").inner_text() == "1 of 20 samples"
    assert w.problems == []
    w.page.close()


@pytest.mark.browser
def test_model_markup_is_shown_as_text_and_never_runs(
    browser: Any, report_file: Path, runs: DemoRuns
) -> None:
    w = watched_page(browser)
    w.page.goto(report_file.as_uri())
    explorer = w.page.locator(section(runs, runs.bench)).locator(".explorer")
    explorer.locator("input[type=search]").fill(runs.xss_sample)
    shown = explorer.locator('article.sample .output[data-variant="acc90"] .resp').inner_text()
    assert XSS_SCRIPT in shown and XSS_IMG in shown and "<b>bold?</b>" in shown
    w.page.wait_for_timeout(200)  # an <img src=x> would have failed to load by now
    assert w.page.evaluate("window.__xss") is None
    assert w.page.locator("main img, .explorer b").count() == 0
    judged = w.page.locator(section(runs, runs.judged)).locator(".explorer")
    judged.locator("details.rationale").first.locator("summary").click()
    assert "<i>judged</i>" in judged.locator("details.rationale").first.inner_text()
    assert judged.locator("details.rationale i").count() == 0
    assert "Step 1: <script>window.__xss=3</script>" in w.page.locator(".iterations").inner_text()
    assert w.problems == []
    w.page.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


@pytest.mark.browser
def test_report_screenshots(
    browser: Any, runs: DemoRuns, store: RunStore, screenshots: Path
) -> None:
    path = write_report(store, [runs.bench], runs.store_dir.parent / "bench.html")
    w = watched_page(browser, 1280, 800)
    w.page.goto(path.as_uri())
    top = w.page.locator('[data-part="cost and quality"]').bounding_box()
    bottom = top["y"] + top["height"] + 16
    shots = [screenshot(w.page, "report", into=screenshots, clip_bottom=bottom)]
    shots.append(
        screenshot(
            w.page,
            "report-latency-comparisons",
            into=screenshots,
            selectors=['[data-part="latency"]', '[data-part="paired comparisons"]'],
        )
    )
    w.page.locator('button[data-filter="disagree"]').click()
    shots.append(
        screenshot(
            w.page,
            "report-samples",
            into=screenshots,
            selectors=['[data-part="samples"]'],
            max_height=1100,
        )
    )
    assert all(p.stat().st_size > 10_000 for p in shots)
    assert w.problems == []
    w.page.close()


def test_browser_tests_skip_locally_but_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.browser as helpers

    monkeypatch.setattr(helpers, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(SCREENSHOTS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        helpers.require_browser()
    monkeypatch.setenv(SCREENSHOTS_ENV, "docs/screenshots")  # make screenshots: never a skip
    with pytest.raises(pytest.fail.Exception, match="cannot run"):
        helpers.require_browser()
    monkeypatch.delenv(SCREENSHOTS_ENV)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        helpers.require_browser()


def test_screenshots_go_to_a_temporary_folder_unless_asked(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.browser import REPO_ROOT

    monkeypatch.delenv(SCREENSHOTS_ENV, raising=False)
    default = screenshot_dir(tmp_path_factory)
    assert default.is_relative_to(tmp_path_factory.getbasetemp())
    monkeypatch.setenv(SCREENSHOTS_ENV, "docs/screenshots")
    assert screenshot_dir(tmp_path_factory) == REPO_ROOT / "docs" / "screenshots"
