"""What a reviewer needs from a benchmark run, in the terminal, ``-o`` JSON, the HTML report
and the dashboard: the prompts compared (with a diff), every metric, the label confusion
matrix, the majority-class baseline (the same number everywhere), long inputs collapsed and
cached responses marked.

The run: one scripted model, two prompts, twelve long reports labelled "no" (8) or "yes" (4).
What the model answers under each prompt is fixed here, so every count and score below is
worked out by hand from the table, not by Assay's code.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assay.analysis.baseline import MajorityBaseline, majority_baseline
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from assay.ui import make_server
from tests.browser import chromium, watched_page
from tests.run_helpers import assay

N_ROWS = 12
LABELS = ["no"] * 8 + ["yes"] * 4
CAREFUL = (
    "Read the incident report.\nDoes it describe an injury?\nAnswer with one word: yes or no.\n"
)
TERSE = "Read the incident report.\nAnswer yes or no.\n"
# What the model answers to each row under each prompt (see the module docstring).
ANSWERS = {
    CAREFUL.strip(): ["No, it does not."] * 8 + ["Yes.", "Yes.", "No.", "Hard to say."],
    TERSE.strip(): ["I cannot tell."] * 2 + ["yes"] * 10,
}
# By hand: careful is right on 10 of 12, terse on the 4 "yes" rows; always "no" on 8 of 12.
CAREFUL_SCORE, TERSE_SCORE, BASELINE_SCORE = 10 / 12, 4 / 12, 8 / 12
CONFUSION = {
    "careful": {
        "no": {"no": 8, "yes": 0, "(no label)": 0},
        "yes": {"no": 1, "yes": 2, "(no label)": 1},
    },
    "terse": {
        "no": {"no": 0, "yes": 6, "(no label)": 2},
        "yes": {"no": 0, "yes": 4, "(no label)": 0},
    },
}
LONG_CHARS = 4_000


def document(i: int) -> str:
    """A long report whose first line says which row it is."""
    head = f"Report {i:02d}: site inspection log."
    filler = " ".join(
        f"Line {n}: the crew checked the scaffolding and signed off." for n in range(80)
    )
    return f"{head}\n{filler}"[:LONG_CHARS]


class Clerk:
    """The scripted model: answers ANSWERS[prompt][row]."""

    def __init__(self) -> None:
        self.rows = {document(i): i for i in range(N_ROWS)}

    def __call__(self, request: ChatRequest) -> Action:
        system = next(m["content"] for m in request.messages if m["role"] == "system")
        row = self.rows[request.last_user_text]
        return reply(ANSWERS[system.strip()][row], input_tokens=900, output_tokens=2)


@dataclass(frozen=True)
class Bench:
    root: Path
    store: Path
    url: str
    run_id: str  # both prompts, fresh calls
    cached_id: str  # the same run again: every response from the cache
    output: dict[str, Any]  # -o JSON of run_id
    stdout: str  # the terminal output of run_id


def run_cli(
    root: Path, url: str, store: Path, name: str, *prompts: Path
) -> tuple[str, dict[str, Any]]:
    out = root / f"{name}.json"
    proc = assay(
        "run",
        str(root / "reports.jsonl"),
        *map(str, prompts),
        "-m",
        "compat/clerk",
        "--base-url",
        url,
        "--metric",
        "label",
        "--metric",
        "rouge",
        "--store",
        str(store),
        "-o",
        str(out),
        env={"COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("reviewer")
    rows = [{"id": f"r{i:02d}", "text": document(i), "label": LABELS[i]} for i in range(N_ROWS)]
    (root / "reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "careful.md").write_text(CAREFUL, encoding="utf-8")
    (root / "terse.md").write_text(TERSE, encoding="utf-8")
    store = root / "store"
    with ScriptedServer(Clerk()) as srv:
        prompts = (root / "careful.md", root / "terse.md")
        stdout, output = run_cli(root, srv.base_url, store, "first", *prompts)
        _, again = run_cli(root, srv.base_url, store, "again", *prompts)
        yield Bench(root, store, srv.base_url, output["run_id"], again["run_id"], output, stdout)


# --- the terminal and -o JSON ---------------------------------------------------------------


def test_json_has_the_majority_baseline_and_every_metric(bench: Bench) -> None:
    out = bench.output
    assert out["majority_baseline"] == {
        "metric": "label",
        "answer": "no",
        "score": pytest.approx(BASELINE_SCORE),
        "n": N_ROWS,
    }
    by = {v["variant"]: v for v in out["variants"]}
    assert list(by) == ["careful", "terse"]
    assert by["careful"]["score"]["mean"] == pytest.approx(CAREFUL_SCORE)
    assert by["terse"]["score"]["mean"] == pytest.approx(TERSE_SCORE)
    for v in by.values():
        assert set(v["metrics"]) == {"label", "rouge"}
        assert v["metrics"]["rouge"]["n_scored"] == N_ROWS
    # rouge-L F1 of "No, it does not." against "no" is 2 * (1/4 * 1) / (1/4 + 1) = 0.4
    assert by["careful"]["metrics"]["rouge"]["mean"] == pytest.approx((8 * 0.4 + 2) / 12)
    assert {name: v["confusion"] for name, v in by.items()} == CONFUSION


def test_show_json_has_the_same_baseline(bench: Bench) -> None:
    shown = assay("show", bench.run_id, "--json", "--store", str(bench.store))
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["majority_baseline"] == bench.output["majority_baseline"]
    assert report["recommendation"] == bench.output["recommendation"]


def test_majority_baseline_counts_labels_as_the_metric_compares_them() -> None:
    assert majority_baseline([]) is None
    # "No" and "no" are one label; a tie goes to the first in sort order
    assert majority_baseline(["no", "No", "yes", "maybe", "yes"]) == MajorityBaseline(
        metric="label", answer="No", score=0.4, n=5
    )
    assert majority_baseline(["b", "a"]) == MajorityBaseline(
        metric="label", answer="a", score=0.5, n=2
    )


def test_recommendation_says_which_variant_does_not_beat_the_baseline(bench: Bench) -> None:
    text = bench.output["recommendation"]
    assert text.startswith("Recommended: careful")
    assert (
        "Always answering 'no' (the most common reference label) scores 0.667: "
        "terse (0.333) does not beat it." in text
    )


def test_terminal_shows_the_baseline_and_every_metric(bench: Bench) -> None:
    flat = " ".join(bench.stdout.split())
    assert (
        "Baseline (label): always 'no' scores 0.667 (the most common reference label, n=12)" in flat
    )
    assert "All metrics (mean with 95% CI)" in bench.stdout
    for v in bench.output["variants"]:
        rouge = v["metrics"]["rouge"]["mean"]
        row = re.search(rf"^\s*{v['variant']}\s+(\S+)\s+(\S+)\s*$", bench.stdout, re.MULTILINE)
        assert row, bench.stdout
        assert row.groups() == (f"{v['score']['mean']:.3f}", f"{rouge:.3f}")
    assert " ".join(bench.output["recommendation"].split()) in flat


def test_a_recommended_prompt_below_the_baseline_is_called_out(bench: Bench) -> None:
    with ScriptedServer(Clerk()) as srv:
        stdout, out = run_cli(
            bench.root, srv.base_url, bench.store, "terse", bench.root / "terse.md"
        )
    text = out["recommendation"]
    assert text.startswith("Only compat/clerk produced scores (0.333, 95% CI [")
    assert text.endswith(
        ", n=12). No variant beats always answering 'no' (the most common reference label), "
        "which scores 0.667."
    )
    assert "No variant beats always answering 'no'" in " ".join(stdout.split())


# --- the report and the dashboard: the same numbers -----------------------------------------


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def element(page: str, pattern: str) -> str:
    found = re.search(pattern, page, re.S)
    assert found, pattern
    return found.group(0)


def check_page(page: str, out: dict[str, Any]) -> None:
    """A report file or the dashboard's run page against -o JSON and the hand-worked table."""
    baseline = element(page, r'<tr class="baseline" data-baseline="label">.*?</tr>')
    assert "always &#x27;no&#x27;" in baseline and ">0.667<" in baseline
    metrics = element(page, r'<table class="metrics">.*?</table>')
    for v in out["variants"]:
        row = element(metrics, rf'<tr data-variant="{v["variant"]}">.*?</tr>')
        for name, agg in v["metrics"].items():
            cell = element(row, rf'<td[^>]*data-value-of="{name}"[^>]*>.*?</td>')
            assert text_of(cell).startswith(f"{agg['mean']:.3f} [{agg['ci_low']:.3f}, ")
    assert re.search(r'data-value-of="label"[^>]*><strong>0\.667</strong>', metrics)
    for variant, matrix in CONFUSION.items():
        block = element(page, rf'<div data-variant="{variant}"><h3>.*?</table>')
        for ref, counts in matrix.items():
            cells = element(block, rf'<tr data-reference="{ref}">.*?</tr>')
            shown = dict(re.findall(r'data-predicted="([^"]+)">(\d+)<', cells))
            assert shown == {p: str(n) for p, n in counts.items()}, (variant, ref)
    prompts = text_of(element(page, r'<section class="card" data-part="prompts">.*?</section>'))
    assert " ".join(CAREFUL.split()) in prompts and " ".join(TERSE.split()) in prompts
    assert "Diff: careful → terse" in prompts
    assert "-Does it describe an injury?" in prompts and "+Answer yes or no." in prompts
    callout = text_of(element(page, r'<div class="callout recommendation">.*?</div>'))
    assert callout == "Recommendation " + out["recommendation"]


def test_report_shows_prompts_metrics_confusion_and_baseline(bench: Bench) -> None:
    path = bench.root / "report.html"
    proc = assay("report", bench.run_id, "-o", str(path), "--store", str(bench.store))
    assert proc.returncode == 0, proc.stderr
    check_page(path.read_text(encoding="utf-8"), bench.output)


@pytest.fixture(scope="module")
def dashboard(bench: Bench) -> Iterator[str]:
    server = make_server(bench.store, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode("utf-8"))


def test_dashboard_run_page_shows_the_same(bench: Bench, dashboard: str) -> None:
    check_page(get(f"{dashboard}/runs/{bench.run_id}"), bench.output)
    report = json.loads(get(f"{dashboard}/api/runs/{bench.run_id}/report"))
    assert report["majority_baseline"] == bench.output["majority_baseline"]


# --- in a browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as context:
        yield context


@pytest.fixture(scope="module")
def report_file(bench: Bench) -> Path:
    path = bench.root / "both.html"
    proc = assay(
        "report", bench.run_id, bench.cached_id, "-o", str(path), "--store", str(bench.store)
    )
    assert proc.returncode == 0, proc.stderr
    return path


def section(run_id: str) -> str:
    return f'section.run[data-run="{run_id}"]'


@pytest.mark.browser
def test_reviewer_parts_are_visible(browser: Any, report_file: Path, bench: Bench) -> None:
    w = watched_page(browser)
    w.page.goto(report_file.as_uri())
    run = w.page.locator(section(bench.run_id))
    diff = run.locator('[data-part="prompts"] .prompt-diff .diff')
    assert diff.is_visible()
    deleted = diff.locator(".del").all_inner_texts()
    assert [t.strip() for t in deleted] == [
        "-Does it describe an injury?",
        "-Answer with one word: yes or no.",
    ]
    assert diff.locator(".add").inner_text().strip() == "+Answer yes or no."
    assert run.locator('[data-part="prompts"] .prompt-text').count() == 2
    cell = run.locator(
        '[data-part="confusion"] [data-variant="terse"] tr[data-reference="no"] '
        'td[data-predicted="(no label)"]'
    )
    assert cell.is_visible() and cell.inner_text() == "2"
    row = run.locator('table.models tr.baseline[data-baseline="label"]')
    assert row.is_visible() and "always 'no'" in row.inner_text() and "0.667" in row.inner_text()
    rouge = run.locator('table.metrics tr[data-variant="careful"] td[data-value-of="rouge"]')
    careful = bench.output["variants"][0]["metrics"]["rouge"]
    assert rouge.inner_text().startswith(f"{careful['mean']:.3f}")
    assert w.problems == []
    w.page.close()


@pytest.mark.browser
def test_long_inputs_are_collapsed_and_expand(
    browser: Any, report_file: Path, bench: Bench
) -> None:
    w = watched_page(browser)
    w.page.goto(report_file.as_uri())
    explorer = w.page.locator(section(bench.run_id)).locator(".explorer")
    samples = explorer.locator("article.sample")
    assert samples.count() == N_ROWS
    first = samples.first
    text = first.locator(".sample-io > div").first.locator(".text")
    shown = text.inner_text()
    assert shown.startswith("Report 00: site inspection log.") and len(shown) <= 301
    button = first.locator("button.toggle")
    assert button.inner_text() == f"Show all {LONG_CHARS:,} characters"
    collapsed = first.bounding_box()["height"]
    button.click()
    assert text.inner_text() == document(0)
    assert first.bounding_box()["height"] > collapsed * 2
    button.click()
    assert text.inner_text() == shown
    # twelve long reports: the explorer stays a few hundred pixels a row
    height = explorer.bounding_box()["height"]
    assert height < N_ROWS * 500, height
    assert first.locator(".sample-head").inner_text().count("prompts disagree") == 1
    assert w.problems == []
    w.page.close()


@pytest.mark.browser
def test_cached_responses_are_marked(browser: Any, report_file: Path, bench: Bench) -> None:
    w = watched_page(browser)
    w.page.goto(report_file.as_uri())
    fresh = w.page.locator(section(bench.run_id)).locator(".explorer .output")
    cached = w.page.locator(section(bench.cached_id)).locator(".explorer .output")
    assert fresh.count() == cached.count() == 2 * N_ROWS
    assert fresh.locator(".pill.cached").count() == 0
    assert cached.locator(".pill.cached").count() == 2 * N_ROWS
    assert w.problems == []
    w.page.close()
