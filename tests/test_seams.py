"""The seams between the entry points (CLI, Python API) and the places a run is shown.

1. Every metric kind as the primary metric: the same score in the terminal table, ``-o`` JSON,
   the recommendation, ``assay show --json``, the HTML report and the dashboard; optimize
   scores with it too.
2. ``assay run`` and ``assay.api.run`` (and optimize) store the same run.
3. Ctrl-C through either entry point leaves the run interrupted and resumable; any other
   error leaves it failed.
4. A resume may raise the budget through either entry point; without the flag the old limit
   holds.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assay import JobInterrupted, OptimizeConfig, ResumeChanges, RunConfig, ScoringConfig, api
from assay.data import demo_path
from assay.data.datasets import FieldMapping
from assay.engine.engine import Budget, EngineConfig
from assay.optimizer.config import Acceptance, SplitConfig, StopRules
from assay.optimizer.records import IterationRecord
from assay.providers.specs import resolve_model
from assay.records import GenerationParams
from assay.scoring.metrics import METRIC_KINDS, metric_name
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import ScriptedServer
from assay.ui import make_server
from assay.ui.server import DashboardServer
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import LabelZoo, assay, child_run_progress, write_prices
from tests.seam_helpers import (
    CASE_NAMES,
    MODELS,
    N_ROWS,
    PROMPT_TEXT,
    Case,
    MetricZoo,
    build_cases,
    first_number,
    flat,
    read_page,
    squash,
    table_rows,
)

PROMPT = str(demo_path("sentiment_prompt.md"))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
VARIANTS = tuple(f"compat/{m}" for m in MODELS)
# Figures that measure time (latency, throughput) differ between any two runs.
TIMING = {"latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "output_tokens_per_s"}


# --- the module's shared store, zoo and dashboard ------------------------------------------


@dataclass(frozen=True)
class Matrix:
    root: Path
    store: Path
    prompt: Path
    cases: dict[str, Case]
    srv: ScriptedServer
    dashboard: DashboardServer

    @property
    def url(self) -> str:
        return self.srv.base_url


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("seams")
    cases = build_cases(root)
    prompt = root / "prompt.md"
    prompt.write_text(PROMPT_TEXT + "\n", encoding="utf-8")
    store = root / "store"
    RunStore.open(store).close()
    dashboard = make_server(store, port=0)
    thread = threading.Thread(target=dashboard.serve_forever, daemon=True)
    thread.start()
    try:
        with ScriptedServer(MetricZoo(cases.values())) as srv:
            yield Matrix(root, store, prompt, cases, srv, dashboard)
    finally:
        dashboard.shutdown()
        dashboard.server_close()
        thread.join(timeout=5)


def fetch(m: Matrix, path: str) -> str:
    port = m.dashboard.server_address[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode("utf-8"))


def test_the_matrix_covers_every_metric_kind(matrix: Matrix) -> None:
    kinds = {case.spec.split(":")[0] for case in matrix.cases.values()}
    assert kinds == set(METRIC_KINDS)


def test_every_case_scores_its_models_apart(matrix: Matrix) -> None:
    """The zoo's design: each metric gives two different, non-trivial means."""
    for case in matrix.cases.values():
        hi, lo = case.expected("hi"), case.expected("lo")
        assert 0 < lo < hi < 1, case.name


# --- what every surface must show -----------------------------------------------------------


def expected_means(case: Case) -> dict[str, float]:
    return {f"compat/{m}": case.expected(m) for m in MODELS}


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-12)


def check_summary(summary: dict[str, Any], metric: str, expected: dict[str, float]) -> None:
    """An ``assay.run/v1`` report: -o JSON, show --json, the dashboard's JSON."""
    assert summary["primary_metric"] == metric
    scores = {v["variant"]: v["score"] for v in summary["variants"]}
    assert list(scores) == list(expected)
    for variant, mean in expected.items():
        assert scores[variant] is not None, f"{variant} has no score under {metric}"
        assert scores[variant]["mean"] == approx(mean), variant
        assert scores[variant]["n_scored"] == N_ROWS
    check_recommendation(summary["recommendation"], expected)


def check_recommendation(text: str, expected: dict[str, float]) -> None:
    best = max(expected, key=lambda v: expected[v])
    quoted = (
        rf"Best score: {re.escape(best)} \({expected[best]:.3f}(, 95% CI \[[^\]]*\])?, n={N_ROWS}\)"
    )
    assert re.search(quoted, flat(text)), f"no {quoted!r} in {text!r}"


def check_table(stdout: str, metric: str, expected: dict[str, float]) -> None:
    """The terminal's models table (``assay run``, ``assay show``) and recommendation."""
    title = f"Results (score = {metric}, mean with 95% CI)"
    assert squash(title) in squash(stdout), stdout  # a long name may be folded mid-word
    rows = table_rows(stdout, expected)
    for variant, mean in expected.items():
        assert rows[variant] == (f"{mean:.3f}", f"{N_ROWS}/0/0"), variant
    check_recommendation(stdout, expected)


def check_page(page_html: str, metric: str, expected: dict[str, float]) -> None:
    """The HTML report, or the dashboard's run page (the same section)."""
    page = read_page(page_html)
    assert f"Score ({metric})" in page.headers
    assert page.meta["Primary metric"] == metric
    for variant, mean in expected.items():
        assert variant in page.scores, f"no models-table row for {variant}"
        assert first_number(page.scores[variant]) == f"{mean:.3f}", page.scores[variant]
        assert page.counts[variant] == f"{N_ROWS} / 0 / 0"
    (explorer,) = [d for d in page.islands if isinstance(d, dict) and "rows" in d]
    assert explorer["metric"] == metric
    for index, variant in enumerate(explorer["variants"]):
        values = [row["cells"][index]["score"] for row in explorer["rows"]]
        assert None not in values and len(values) == N_ROWS
        assert sum(values) / N_ROWS == approx(expected[variant])
    check_recommendation(html.unescape(re.sub(r"<[^>]+>", " ", page_html)), expected)


def check_answers(m: Matrix, run_id: str, case: Case) -> None:
    """The store holds what the server answered, each scored as the case says it earns."""
    metric = metric_name(case.spec)
    store = RunStore.open(m.store)
    try:
        results = store.results(run_id)
    finally:
        store.close()
    assert len(results) == len(MODELS) * N_ROWS
    for r in results:
        want = case.reply(r.variant.removeprefix("compat/"), int(r.sample_id.removeprefix("s")))
        assert r.completion is not None and r.completion.text == want.text
        assert r.scores[metric].value == approx(want.score), (r.sample_id, want.text)


def check_dashboard(m: Matrix, run_id: str, metric: str, expected: dict[str, float]) -> None:
    record = json.loads(fetch(m, f"/api/runs/{run_id}"))
    assert record["status"] == "complete"
    assert record["config"]["primary_metric"] == metric
    check_summary(record["summary"], metric, expected)
    check_summary(json.loads(fetch(m, f"/api/runs/{run_id}/report")), metric, expected)
    check_page(fetch(m, f"/runs/{run_id}"), metric, expected)
    listing = fetch(m, "/")
    row = re.search(rf'<tr[^>]*data-run="{re.escape(run_id)}"[^>]*>(.*?)</tr>', listing, re.S)
    assert row, f"run {run_id} is not listed"
    best = max(expected, key=lambda v: expected[v])
    assert f">{expected[best]:.3f} {best}<" in row[1]


# --- 1. every metric kind as the primary metric ---------------------------------------------


def bench_config(m: Matrix, case: Case) -> RunConfig:
    return RunConfig(
        data=str(case.data),
        prompts=[str(m.prompt)],
        models=[resolve_model(v, base_url=m.url) for v in VARIANTS],
        scoring=ScoringConfig(metrics=[case.spec]),
    )


@pytest.mark.parametrize("name", CASE_NAMES)
def test_api_run_shows_the_primary_score_everywhere(
    matrix: Matrix, name: str, tmp_path: Path
) -> None:
    case = matrix.cases[name]
    metric, expected = metric_name(case.spec), expected_means(case)
    out = tmp_path / "out.json"
    report = api.run(bench_config(matrix, case), store=matrix.store, output=out)
    run_id, store = report.run_id, str(matrix.store)
    check_answers(matrix, run_id, case)
    check_summary(report.model_dump(mode="json", by_alias=True), metric, expected)
    check_summary(json.loads(out.read_text(encoding="utf-8")), metric, expected)
    shown = assay("show", run_id, "--json", "--store", store)
    assert shown.returncode == 0, shown.stderr
    check_summary(json.loads(shown.stdout), metric, expected)
    table = assay("show", run_id, "--store", store)
    assert table.returncode == 0, table.stderr
    check_table(table.stdout, metric, expected)
    written = assay("report", run_id, "-o", str(tmp_path / "r.html"), "--store", store)
    assert written.returncode == 0, written.stderr
    check_page((tmp_path / "r.html").read_text(encoding="utf-8"), metric, expected)
    check_dashboard(matrix, run_id, metric, expected)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_run_shows_the_primary_score_everywhere(
    matrix: Matrix, name: str, tmp_path: Path
) -> None:
    case = matrix.cases[name]
    metric, expected = metric_name(case.spec), expected_means(case)
    out = tmp_path / "out.json"
    models = [arg for v in VARIANTS for arg in ("-m", v)]
    proc = assay(
        "run",
        str(case.data),
        str(matrix.prompt),
        *models,
        "--base-url",
        matrix.url,
        "--metric",
        case.spec,
        "--store",
        str(matrix.store),
        "-o",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    written = json.loads(out.read_text(encoding="utf-8"))
    check_summary(written, metric, expected)
    check_table(proc.stdout, metric, expected)
    assert flat(written["recommendation"]) + " Run " in flat(proc.stdout)  # printed whole
    store = RunStore.open(matrix.store)
    try:
        assert store.get_run(written["run_id"]).config.primary_metric == metric
    finally:
        store.close()
    check_dashboard(matrix, written["run_id"], metric, expected)


def test_cli_prints_a_single_models_recommendation_as_stored(
    matrix: Matrix, tmp_path: Path
) -> None:
    case = matrix.cases["number:0.01"]
    out = tmp_path / "out.json"
    args = [str(case.data), str(matrix.prompt), "-m", "compat/hi", "--base-url", matrix.url]
    proc = assay("run", *args, "--metric", case.spec, "--store", str(matrix.store), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    recommendation = json.loads(out.read_text(encoding="utf-8"))["recommendation"]
    assert recommendation.startswith(f"Only compat/hi produced scores ({case.expected('hi'):.3f}")
    assert flat(recommendation) + " Run " in flat(proc.stdout)  # once, not "..."


def optimize_config(m: Matrix, case: Case) -> OptimizeConfig:
    return OptimizeConfig(
        data=str(case.data),
        prompt=str(m.prompt),
        model=resolve_model("compat/task", base_url=m.url),
        reasoning_model=resolve_model("compat/reasoner", base_url=m.url),
        scoring=ScoringConfig(metrics=[case.spec]),
        strategy="iterative",
        batch_size=4,
        stop=StopRules(max_iterations=1),
    )


def check_optimized(m: Matrix, case: Case, result: dict[str, Any]) -> None:
    """The result and the stored run score with the primary metric; the test means are the
    task model's ("hi"'s replies, whatever the prompt) on the stored test split."""
    metric = metric_name(case.spec)
    assert result["metric"] == metric
    store = RunStore.open(m.store)
    try:
        run = store.get_run(result["run_id"])
    finally:
        store.close()
    assert run.config.primary_metric == metric
    assert run.summary is not None and run.summary["metric"] == metric
    test_rows = [int(i.removeprefix("s")) for i in run.config.split_ids("test")]
    assert test_rows and result["split"]["test"] == len(test_rows)
    for key in ("baseline", "final"):
        test = result[key]["test"]
        assert test["n_scored"] == len(test_rows), key
        assert test["mean"] == approx(case.expected("hi", test_rows)), key
    assert result["trajectory"][0]["status"] == "baseline"
    record = json.loads(fetch(m, f"/api/runs/{result['run_id']}"))
    assert record["config"]["primary_metric"] == metric
    assert record["summary"]["final"]["test"]["mean"] == result["final"]["test"]["mean"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_api_optimize_scores_with_the_primary_metric(
    matrix: Matrix, name: str, tmp_path: Path
) -> None:
    case = matrix.cases[name]
    out = tmp_path / "result.json"
    result = api.optimize(optimize_config(matrix, case), store=matrix.store, results_json=out)
    check_optimized(matrix, case, result.model_dump(mode="json", by_alias=True))
    assert json.loads(out.read_text(encoding="utf-8")) == result.model_dump(
        mode="json", by_alias=True
    )


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_optimize_scores_with_the_primary_metric(
    matrix: Matrix, name: str, tmp_path: Path
) -> None:
    case = matrix.cases[name]
    out = tmp_path / "result.json"
    proc = assay(
        "optimize",
        str(case.data),
        str(matrix.prompt),
        "-m",
        "compat/task",
        "--base-url",
        matrix.url,
        "--reasoning-model",
        "compat/reasoner",
        "--reasoning-base-url",
        matrix.url,
        "--metric",
        case.spec,
        "--strategy",
        "iterative",
        "--batch-size",
        "4",
        "--max-iterations",
        "1",
        "--store",
        str(matrix.store),
        "--results-json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    check_optimized(matrix, case, result)
    base, final = result["baseline"]["test"], result["final"]["test"]
    printed = squash(proc.stdout)
    metric = metric_name(case.spec)
    assert proc.stdout.splitlines()[0] == result["headline"]
    assert squash(f"strategy iterative, metric {metric})") in printed, proc.stdout
    assert squash(
        f"starting prompt {result['baseline']['val']['mean']:.3f} {base['mean']:.3f}"
    ) in (printed)
    assert (
        squash(f"best prompt {result['final']['val']['mean']:.3f} {final['mean']:.3f}") in printed
    )


# --- 2. the CLI and the API store the same run ----------------------------------------------


def stored(store_dir: Path, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    store = RunStore.open(store_dir)
    try:
        run = store.get_run(run_id)
        rows = [result_row(r) for r in store.results(run_id)]
        return run.config.model_dump(), sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
    finally:
        store.close()


def result_row(r: ResultRecord) -> dict[str, Any]:
    return {
        "variant": r.variant,
        "sample_id": r.sample_id,
        "repeat": r.repeat,
        "request": r.request.model_dump(mode="json"),
        "scores": {k: s.model_dump(mode="json") for k, s in r.scores.items()},
        "text": r.completion.text if r.completion else None,
        "error": r.error,
    }


def without_timing(summary: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in summary.items() if k not in {"run_id", "pareto_quality_latency"}}
    out["variants"] = [
        {k: v for k, v in variant.items() if k not in TIMING} for variant in summary["variants"]
    ]
    return out


def test_cli_and_api_runs_store_the_same_run(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 16)
    prices = write_prices(tmp_path / "p.json", {"acc90": (2.0, 8.0), "acc60": (0.2, 0.8)})
    cli_store, api_store = tmp_path / "cli", tmp_path / "api"
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay(
            "run",
            str(data),
            PROMPT,
            "-m",
            "compat/acc90",
            "-m",
            "compat/acc60",
            "--base-url",
            srv.base_url,
            "--metric",
            "label",
            "--metric",
            "number:0.5",
            "--repeats",
            "2",
            "--limit",
            "12",
            "--max-tokens",
            "4",
            "--temperature",
            "0.5",
            "--seed",
            "3",
            "--concurrency",
            "2",
            "--timeout",
            "30",
            "--max-cost",
            "1",
            "--input-field",
            "text",
            "--output-field",
            "label",
            "--prices",
            str(prices),
            "--store",
            str(cli_store),
            "-o",
            str(tmp_path / "cli.json"),
        )
        assert proc.returncode == 0, proc.stderr
        cli_calls = srv.count
        config = RunConfig(
            data=str(data),
            prompts=[PROMPT],
            models=[
                resolve_model(s, base_url=srv.base_url) for s in ("compat/acc90", "compat/acc60")
            ],
            mapping=FieldMapping(input_field="text", output_field="label"),
            scoring=ScoringConfig(metrics=["label", "number:0.5"]),
            params=GenerationParams(max_tokens=4, temperature=0.5, seed=3),
            repeats=2,
            engine=EngineConfig(concurrency=2, timeout_s=30, budget=Budget(max_cost_usd=1.0)),
            seed=3,
            limit=12,
        )
        report = api.run(config, store=api_store, prices=prices, output=tmp_path / "api.json")
        assert srv.count == 2 * cli_calls == 2 * 2 * 12 * 2  # each run called every item once
    cli_summary = json.loads((tmp_path / "cli.json").read_text(encoding="utf-8"))
    api_summary = json.loads((tmp_path / "api.json").read_text(encoding="utf-8"))
    cli_config, cli_rows = stored(cli_store, cli_summary["run_id"])
    api_config, api_rows = stored(api_store, report.run_id)
    assert cli_config == api_config
    assert cli_config["primary_metric"] == "label"
    assert len(cli_rows) == 2 * 12 * 2 and cli_rows == api_rows
    assert without_timing(cli_summary) == without_timing(api_summary)
    assert cli_summary["variants"][0]["score"]["n_scored"] == 24


def test_cli_and_api_store_a_relative_path_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_dataset(tmp_path / "d.jsonl", 6)
    (tmp_path / "p.md").write_text(Path(PROMPT).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with ScriptedServer(LabelZoo()) as srv:
        args = ["./d.jsonl", "./p.md", "-m", "compat/acc90", "--base-url", srv.base_url]
        proc = assay("run", *args, "--metric", "label", "--json")
        assert proc.returncode == 0, proc.stderr
        config = RunConfig(
            data="./d.jsonl",
            prompts=["./p.md"],
            models=[resolve_model("compat/acc90", base_url=srv.base_url)],
            scoring=ScoringConfig(metrics=["label"]),
            params=GenerationParams(seed=0),  # the CLI's --seed default
        )
        report = api.run(config)
    store = Path(os.environ["ASSAY_STORE"])
    cli_config, cli_rows = stored(store, json.loads(proc.stdout)["run_id"])
    api_config, api_rows = stored(store, report.run_id)
    assert cli_rows == api_rows
    assert cli_config == api_config


def optimize_cli_args(srv: ScriptedServer, data: Path, *extra: str) -> list[str]:
    return [
        "optimize",
        str(data),
        PROMPT,
        "-m",
        "compat/task",
        "--base-url",
        srv.base_url,
        "--reasoning-model",
        "compat/reasoner",
        "--reasoning-base-url",
        srv.base_url,
        "--metric",
        "label",
        "--strategy",
        "iterative",
        "--batch-size",
        "8",
        *extra,
    ]


def optimize_api_config(srv: ScriptedServer, data: Path, **kw: Any) -> OptimizeConfig:
    fields: dict[str, Any] = {
        "data": str(data),
        "prompt": PROMPT,
        "model": resolve_model("compat/task", base_url=srv.base_url),
        "reasoning_model": resolve_model("compat/reasoner", base_url=srv.base_url),
        "scoring": ScoringConfig(metrics=["label"]),
        "strategy": "iterative",
        "batch_size": 8,
    }
    return OptimizeConfig(**{**fields, **kw})


def test_cli_and_api_optimize_store_the_same_run(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    plan = [proposal(f"A {i} long story.") if i % 2 else proposal(GOOD) for i in range(4)]
    cli_store, api_store = tmp_path / "cli", tmp_path / "api"
    with ScriptedServer(OptimizeZoo(plan)) as srv:
        extra = ["--max-iterations", "2", "--patience", "2", "--seed", "1", "--max-calls", "900"]
        extra += ["--split", "0.3,0.45,0.25", "--min-gain", "0.02", "--alpha", "0.1"]
        out = tmp_path / "cli.json"
        proc = assay(
            *optimize_cli_args(srv, data, *extra),
            "--store",
            str(cli_store),
            "--results-json",
            str(out),
        )
        assert proc.returncode == 0, proc.stderr
        srv.handler = OptimizeZoo(plan)  # the same endpoint; the reasoner's plan starts over
        config = optimize_api_config(
            srv,
            data,
            params=GenerationParams(seed=1),
            split=SplitConfig(train=0.3, val=0.45, test=0.25, seed=1),
            acceptance=Acceptance(min_gain=0.02, alpha=0.1),
            stop=StopRules(max_iterations=2, patience=2),
            engine=EngineConfig(budget=Budget(max_calls=900)),
            seed=1,
        )
        result = api.optimize(config, store=api_store)
    cli = json.loads(out.read_text(encoding="utf-8"))
    mine = result.model_dump(mode="json", by_alias=True)
    cli_config, cli_rows = stored(cli_store, cli["run_id"])
    api_config, api_rows = stored(api_store, result.run_id)
    assert cli_config == api_config
    assert cli_rows == api_rows
    assert [(r["status"], r["prompt_hash"]) for r in cli["trajectory"]] == [
        (r["status"], r["prompt_hash"]) for r in mine["trajectory"]
    ]
    assert [r["status"] for r in cli["trajectory"]] == ["baseline", "accepted", "rejected"]
    assert cli["best_prompt"] == mine["best_prompt"] == GOOD
    for key in ("baseline", "final", "gain", "spend"):
        assert cli[key] == mine[key], key
    assert {k: v for k, v in cli.items() if k != "run_id"} == {
        k: v for k, v in mine.items() if k != "run_id"
    }


# --- 3. Ctrl-C and other errors through both entry points ------------------------------------


class RaiseAfter:
    """A progress sink / reporter that raises ``error`` at its ``n``-th result or iteration."""

    def __init__(self, n: int, error: BaseException) -> None:
        self.n, self.error, self.seen = n, error, 0

    def _tick(self) -> None:
        self.seen += 1
        if self.seen == self.n:
            raise self.error

    def on_result(self, result: ResultRecord) -> None:
        self._tick()

    def phase(self, text: str) -> None:
        pass

    def iteration(self, record: IterationRecord) -> None:
        self._tick()


def label_config(srv: ScriptedServer, data: Path, **engine: Any) -> RunConfig:
    return RunConfig(
        data=str(data),
        prompts=[PROMPT],
        models=[resolve_model(s, base_url=srv.base_url) for s in ("compat/acc90", "compat/acc60")],
        scoring=ScoringConfig(metrics=["label"]),
        params=GenerationParams(max_tokens=2),
        engine=EngineConfig(**{"concurrency": 1, **engine}),
    )


def run_status(store_dir: Path, run_id: str) -> str:
    store = RunStore.open(store_dir)
    try:
        return store.get_run(run_id).status
    finally:
        store.close()


def only_run(store_dir: Path) -> str:
    store = RunStore.open(store_dir)
    try:
        (run,) = store.list_runs()
        return run.id
    finally:
        store.close()


def stored_results(store_dir: Path, run_id: str) -> list[ResultRecord]:
    store = RunStore.open(store_dir)
    try:
        return store.results(run_id)
    finally:
        store.close()


def figures(summary: dict[str, Any]) -> list[Any]:
    """What a finished run reports, without ids and timing."""
    return [
        [
            (v["variant"], v["score"], v["n_errors"], v["cost_per_1k_usd"])
            for v in summary["variants"]
        ],
        summary["comparisons"],
        summary["status"],
    ]


def uninterrupted_run(data: Path, store: Path) -> dict[str, Any]:
    with ScriptedServer(LabelZoo()) as srv:
        report = api.run(label_config(srv, data), store=store)
    return report.model_dump(mode="json", by_alias=True)


def test_ctrl_c_in_an_api_run_leaves_it_interrupted_and_resumable(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 15)
    store = tmp_path / "store"
    zoo = LabelZoo()
    with ScriptedServer(zoo) as srv:
        with pytest.raises(JobInterrupted) as raised:
            api.run(
                label_config(srv, data), store=store, progress=RaiseAfter(7, KeyboardInterrupt())
            )
        run_id = raised.value.run_id
        assert f"assay run --resume {run_id}" in str(raised.value)
        assert run_status(store, run_id) == "interrupted"
        assert srv.count == len(stored_results(store, run_id)) == 7
        resumed = api.run(resume=run_id, store=store)
        assert srv.count == 30
    assert resumed.run_id == run_id and run_status(store, run_id) == "complete"
    assert set(zoo.arrivals.values()) == {1}  # no call was made twice
    fresh = uninterrupted_run(data, tmp_path / "fresh")
    assert figures(resumed.model_dump(mode="json", by_alias=True)) == figures(fresh)


def test_an_unexpected_error_in_an_api_run_leaves_it_failed_and_resumable(
    tmp_path: Path,
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 10)
    store = tmp_path / "store"
    with ScriptedServer(LabelZoo()) as srv:
        with pytest.raises(RuntimeError, match="sink broke"):
            api.run(
                label_config(srv, data),
                store=store,
                progress=RaiseAfter(3, RuntimeError("sink broke")),
            )
        run_id = only_run(store)
        assert run_status(store, run_id) == "failed"
        resumed = api.run(resume=run_id, store=store)
        assert srv.count == 20
    assert resumed.status == "complete" and run_status(store, run_id) == "complete"


OPT_PLAN = [
    proposal(f"A {i} long story.") if i % 2 else proposal(f"{GOOD} Take {i}.") for i in range(6)
]


def test_ctrl_c_in_an_api_optimize_leaves_it_interrupted_and_resumable(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    store = tmp_path / "store"
    stop = StopRules(max_iterations=3, patience=3)
    with ScriptedServer(OptimizeZoo(OPT_PLAN)) as srv:
        config = optimize_api_config(srv, data, stop=stop)
        with pytest.raises(JobInterrupted) as raised:  # after the baseline and one rewrite
            api.optimize(config, store=store, reporter=RaiseAfter(2, KeyboardInterrupt()))
        run_id = raised.value.run_id
        assert f"assay optimize --resume {run_id}" in str(raised.value)
        assert run_status(store, run_id) == "interrupted"
        check_store = RunStore.open(store)
        assert len(check_store.iterations(run_id)) == 2
        check_store.close()
        resumed = api.optimize(resume=run_id, store=store)
        calls = srv.count
    assert resumed.run_id == run_id and run_status(store, run_id) == "complete"
    with ScriptedServer(OptimizeZoo(OPT_PLAN)) as srv:
        fresh = api.optimize(optimize_api_config(srv, data, stop=stop), store=tmp_path / "fresh")
        assert srv.count == calls  # the interrupted run repeated no call
    a, b = resumed.model_dump(mode="json"), fresh.model_dump(mode="json")
    assert [(r["status"], r["prompt_hash"]) for r in a["trajectory"]] == [
        (r["status"], r["prompt_hash"]) for r in b["trajectory"]
    ]
    assert len(a["trajectory"]) == 4 and a["spend"]["calls"] == b["spend"]["calls"] == calls
    assert (a["best_prompt"], a["baseline"], a["final"]) == (
        b["best_prompt"],
        b["baseline"],
        b["final"],
    )


def test_an_unexpected_error_in_an_api_optimize_leaves_it_failed(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 30)
    store = tmp_path / "store"
    with ScriptedServer(OptimizeZoo([proposal(GOOD)])) as srv:
        config = optimize_api_config(srv, data, stop=StopRules(max_iterations=2))
        with pytest.raises(RuntimeError, match="reporter broke"):
            api.optimize(
                config, store=store, reporter=RaiseAfter(1, RuntimeError("reporter broke"))
            )
    assert run_status(store, only_run(store)) == "failed"


def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_sigint_to_the_cli_leaves_the_run_interrupted_and_resumable(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 40)
    store = tmp_path / "store"
    zoo = LabelZoo(delays={"acc90": 0.05, "acc60": 0.05})  # 80 calls, 2 at a time: 2 s
    with ScriptedServer(zoo) as srv:
        args = [str(data), PROMPT, "-m", "compat/acc90", "-m", "compat/acc60", "--metric", "label"]
        args += ["--concurrency", "2", "--max-tokens", "2", "--store", str(store)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "assay", "run", *args, "--base-url", srv.base_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: (child_run_progress(store) or ("", 0))[1] >= 4, timeout=60)
            os.kill(proc.pid, signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        progress = child_run_progress(store)
        assert progress is not None
        run_id, saved = progress
        assert proc.returncode != 0
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"assay run --resume {run_id}" in errors[0], stderr
        assert "Traceback" not in stderr
        assert run_status(store, run_id) == "interrupted"
        assert 4 <= saved < 80
        done = {
            (r.variant.removeprefix("compat/"), r.request.messages[-1].content)
            for r in stored_results(store, run_id)
        }
        resumed = assay(
            "run", "--resume", run_id, "--store", str(store), "-o", str(tmp_path / "r.json")
        )
        assert resumed.returncode == 0, resumed.stderr
    assert run_status(store, run_id) == "complete"
    assert all(zoo.arrivals[key] == 1 for key in done)  # completed calls were not sent again
    assert max(zoo.arrivals.values()) <= 2  # only calls in flight at Ctrl-C were re-sent
    summary = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert figures(summary) == figures(uninterrupted_run(data, tmp_path / "fresh"))


# --- 4. what a resume may change, through both entry points ----------------------------------

PER_CALL = (40 * 2.0 + 2 * 8.0) / 1e6  # LabelZoo: 40 tokens in, 2 out, at $2 / $8 per Mtok
LIMIT = 10 * PER_CALL


def test_cli_resume_raises_the_cost_budget_only_when_told(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 20)
    prices = write_prices(tmp_path / "p.json", {"acc90": (2.0, 8.0), "acc60": (2.0, 8.0)})
    store = str(tmp_path / "store")
    zoo = LabelZoo()

    def report(*args: str) -> dict[str, Any]:
        out = tmp_path / "out.json"
        proc = assay(*args, "--store", store, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    with ScriptedServer(zoo) as srv:
        models = ["-m", "compat/acc90", "-m", "compat/acc60", "--base-url", srv.base_url]
        first = report(
            "run", str(data), PROMPT, *models, "--metric", "label", "--max-tokens", "2",
            "--concurrency", "1", "--max-cost", f"{LIMIT}", "--prices", str(prices),
        )  # fmt: skip
        assert first["status"] == "stopped" and "budget" in first["stopped_reason"].lower()
        calls = srv.count
        assert 0 < calls < 40 and first["spent_usd"] <= LIMIT
        again = report("run", "--resume", first["run_id"])
        assert again["status"] == "stopped" and srv.count == calls  # the old limit holds
        done = report("run", "--resume", first["run_id"], "--max-cost", f"{100 * LIMIT}")
        assert srv.count == 40
    assert done["status"] == "complete" and done["run_id"] == first["run_id"]
    assert set(zoo.arrivals.values()) == {1}
    for variant in done["variants"]:
        model = variant["variant"].removeprefix("compat/")
        answered = [ok for (m, _), ok in zoo.correct.items() if m == model]
        assert variant["score"]["mean"] == approx(sum(answered) / 20)
    assert done["total_cost_usd"] == approx(40 * PER_CALL)


def test_api_resume_raises_the_cost_budget_only_when_told(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 20)
    prices = write_prices(tmp_path / "p.json", {"acc90": (2.0, 8.0), "acc60": (2.0, 8.0)})
    store = tmp_path / "store"
    zoo = LabelZoo()
    with ScriptedServer(zoo) as srv:
        config = label_config(srv, data, budget=Budget(max_cost_usd=LIMIT))
        first = api.run(config, store=store, prices=prices)
        assert first.status == "stopped" and "budget" in (first.stopped_reason or "").lower()
        calls = srv.count
        assert 0 < calls < 40 and (first.spent_usd or 0) <= LIMIT
        again = api.run(resume=first.run_id, store=store)
        assert again.status == "stopped" and srv.count == calls
        done = api.run(
            resume=first.run_id, store=store, changes=ResumeChanges(max_cost_usd=100 * LIMIT)
        )
        assert srv.count == 40
    assert done.status == "complete" and set(zoo.arrivals.values()) == {1}
    assert done.total_cost_usd == approx(40 * PER_CALL)


Optimize = Callable[..., dict[str, Any]]


def check_call_budget_resumes(optimize: Optimize, srv: ScriptedServer) -> list[dict[str, Any]]:
    """``optimize(resume=..., max_calls=...)`` through one entry point: 60 calls cover the
    baseline and the test but not an iteration; a resume keeps that limit unless raised."""
    first = optimize(max_calls=60)
    assert first["stopped_reason"].startswith("budget") and first["iterations"] == 0
    calls = srv.count
    assert calls <= 60 and first["spend"]["calls"] == calls
    again = optimize(resume=first["run_id"])
    assert again["stopped_reason"].startswith("budget") and again["iterations"] == 0
    assert srv.count == calls  # the old limit holds: no call
    done = optimize(resume=first["run_id"], max_calls=400)
    assert done["run_id"] == first["run_id"] and done["iterations"] == 2
    assert done["stopped_reason"] == "max iterations (2) done"
    assert calls < srv.count <= 400
    assert done["final"]["test"]["n_scored"] == done["split"]["test"]
    return [first, again, done]


def cli_optimizer(srv: ScriptedServer, data: Path, store: Path) -> Optimize:
    def optimize(resume: str | None = None, max_calls: int | None = None) -> dict[str, Any]:
        limit = [] if max_calls is None else ["--max-calls", str(max_calls)]
        if resume is None:
            args = optimize_cli_args(srv, data, "--max-iterations", "2", "--patience", "5")
        else:
            args = ["optimize", "--resume", resume]
        proc = assay(*args, *limit, "--store", str(store), "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    return optimize


def api_optimizer(srv: ScriptedServer, data: Path, store: Path) -> Optimize:
    def optimize(resume: str | None = None, max_calls: int | None = None) -> dict[str, Any]:
        if resume is None:
            config = optimize_api_config(
                srv,
                data,
                stop=StopRules(max_iterations=2, patience=5),
                engine=EngineConfig(budget=Budget(max_calls=max_calls)),
            )
            result = api.optimize(config, store=store)
        else:
            changes = ResumeChanges(max_calls=max_calls)
            result = api.optimize(resume=resume, store=store, changes=changes)
        return result.model_dump(mode="json", by_alias=True)

    return optimize


@pytest.mark.parametrize("entry", [cli_optimizer, api_optimizer], ids=["cli", "api"])
def test_optimize_resume_raises_the_call_budget_only_when_told(
    tmp_path: Path, entry: Callable[[ScriptedServer, Path, Path], Optimize]
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 40)
    with ScriptedServer(OptimizeZoo(OPT_PLAN)) as srv:
        check_call_budget_resumes(entry(srv, data, tmp_path / "store"), srv)


def test_optimize_spend_counts_every_session_of_a_resumed_run(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 40)
    with ScriptedServer(OptimizeZoo(OPT_PLAN)) as srv:
        first, again, done = check_call_budget_resumes(
            api_optimizer(srv, data, tmp_path / "store"), srv
        )
        total = srv.count
    assert again["spend"] == first["spend"]  # the resume made no call
    assert done["spend"]["calls"] == total
