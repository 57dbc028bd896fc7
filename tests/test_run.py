"""``assay run`` end to end: the scripted server as a model zoo, and the real embedded model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assay.analysis.results import RunReport
from assay.benchmark.config import RunConfig
from assay.data import demo_path
from assay.data.datasets import KeepRows
from assay.engine.engine import Budget, EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.jobs import BenchmarkJob, Session
from assay.providers.specs import resolve_model
from assay.records import Price
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.run_helpers import LabelZoo, assay, assay_process, write_prices

SENTIMENT = str(demo_path("sentiment.jsonl"))
PROMPT = str(demo_path("sentiment_prompt.md"))
PRICES = {
    "acc90": Price(input_per_mtok=2.0, output_per_mtok=8.0),
    "acc60": Price(input_per_mtok=0.2, output_per_mtok=0.8),
}


def run_api(cfg: RunConfig, store_dir: Path) -> RunReport:
    return BenchmarkJob.prepare(Session.open(store_dir), cfg).execute()


def zoo_config(srv: ScriptedServer, limit: int, **kw: object) -> RunConfig:
    models = [
        resolve_model(f"compat/{m}", base_url=srv.base_url, label=m, price=PRICES[m])
        for m in ("acc90", "acc60")
    ]
    return RunConfig(
        data=SENTIMENT,
        prompts=[PROMPT],
        models=models,
        scoring=ScoringConfig(metrics=["label"]),
        limit=limit,
        **kw,
    )


def test_table_values_match_what_the_server_did(tmp_path: Path) -> None:
    zoo = LabelZoo(delays={"acc90": 0.2, "acc60": 0.0}, tokens=(40, 2))
    with ScriptedServer(zoo) as srv:
        report = run_api(zoo_config(srv, limit=40), tmp_path)
    by = {v.variant: v for v in report.variants}
    for model in ("acc90", "acc60"):
        answered = [ok for (m, _), ok in zoo.correct.items() if m == model]
        assert len(answered) == 40
        score = by[model].score
        assert score is not None
        assert score.mean == pytest.approx(sum(answered) / 40)
        price = PRICES[model]
        per_request = (40 * price.input_per_mtok + 2 * price.output_per_mtok) / 1e6
        assert by[model].cost_per_1k_usd == pytest.approx(per_request * 1000)
        assert by[model].n_errors == 0 and score.n_scored == 40
    assert by["acc90"].latency_p50_ms is not None and by["acc60"].latency_p50_ms is not None
    # The server's delay is a floor for latency; the ordering holds whatever the machine load.
    assert by["acc90"].latency_p50_ms >= 200
    assert by["acc90"].latency_p50_ms > by["acc60"].latency_p50_ms
    assert set(report.pareto_quality_cost) <= {"acc90", "acc60"}
    assert "acc90" in report.recommendation and "acc60" in report.recommendation


def test_cli_run_writes_versioned_results_json(tmp_path: Path) -> None:
    zoo = LabelZoo()
    out = tmp_path / "results.json"
    prices = write_prices(tmp_path / "prices.json", {"acc90": (2.0, 8.0), "acc60": (0.2, 0.8)})
    with ScriptedServer(zoo) as srv:
        proc = assay(
            "run",
            SENTIMENT,
            PROMPT,
            "-m",
            "compat/acc90",
            "-m",
            "compat/acc60",
            "--base-url",
            srv.base_url,
            "--metric",
            "label",
            "--limit",
            "12",
            "--prices",
            str(prices),
            "-o",
            str(out),
            "--json",
        )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    written = json.loads(out.read_text())
    assert printed == written
    assert written["schema"] == "assay.run/v1"
    assert [v["variant"] for v in written["variants"]] == ["compat/acc90", "compat/acc60"]
    assert all(v["score"]["n_scored"] == 12 for v in written["variants"])
    assert written["variants"][0]["cost_per_1k_usd"] == pytest.approx(
        (40 * 2.0 + 2 * 8.0) / 1e6 * 1000
    )
    show = assay("show", written["run_id"], "--json")
    assert json.loads(show.stdout)["variants"] == written["variants"]


def test_reference_metric_on_label_free_data_fails_before_any_call(tmp_path: Path) -> None:
    data = tmp_path / "free.jsonl"
    data.write_text('{"text": "great film"}\n{"text": "awful"}\n')
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay(
            "run",
            str(data),
            PROMPT,
            "-m",
            "compat/acc90",
            "--base-url",
            srv.base_url,
            "--metric",
            "exact",
        )
        assert srv.count == 0
    assert proc.returncode == 2
    assert "--judge" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_max_cost_stops_before_the_budget_and_reports_spend(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo(tokens=(40, 2))) as srv:
        # Worst case per acc90 call is bounded by max_tokens=8; ~5 calls fit in the budget.
        cfg = zoo_config(
            srv,
            limit=30,
            params={"max_tokens": 8},
            engine=EngineConfig(concurrency=4, budget=Budget(max_cost_usd=0.0015)),
        )
        report = run_api(cfg, tmp_path)
        served = srv.count
    assert report.status == "stopped" and report.stopped_reason
    assert report.spent_usd is not None and report.spent_usd <= 0.0015
    done = sum((v.score.n_scored if v.score else 0) + v.n_errors for v in report.variants)
    assert served == done and 0 < done < 60


def test_repeats_send_distinct_requests_and_are_cached_per_repeat(tmp_path: Path) -> None:
    zoo = LabelZoo()
    with ScriptedServer(zoo) as srv:
        run_api(zoo_config(srv, limit=5, repeats=3), tmp_path)
        assert srv.count == 2 * 5 * 3
        run_api(zoo_config(srv, limit=5, repeats=3), tmp_path)
        assert srv.count == 2 * 5 * 3  # the second run is served from the cache


def _wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_kill_and_resume_repeats_no_completed_call(tmp_path: Path) -> None:
    zoo = LabelZoo(delays={"acc90": 0.03, "acc60": 0.03})
    args = [
        SENTIMENT,
        PROMPT,
        "-m",
        "compat/acc90",
        "-m",
        "compat/acc60",
        "--metric",
        "label",
        "--limit",
        "40",
        "--concurrency",
        "4",
        "--json",
    ]
    with ScriptedServer(zoo) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assay", "run", *args, "--base-url", srv.base_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _wait_for(lambda: srv.count >= 30, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = RunStore.open(os.environ["ASSAY_STORE"])
        run_id = store.list_runs()[0].id
        completed = {
            (r.variant.removeprefix("compat/"), r.sample_id) for r in store.results(run_id)
        }
        assert 0 < len(completed) < 80
        texts = {r.sample_id: r.request.messages[-1].content for r in store.results(run_id)}
        before = dict(zoo.arrivals)
        resumed = assay("run", "--resume", run_id, "--json")
        assert resumed.returncode == 0, resumed.stderr
        for model, sample_id in completed:
            key = (model, texts[sample_id])
            assert zoo.arrivals[key] == before[key] == 1  # never sent again after the kill
        assert all(n <= 2 for n in zoo.arrivals.values())  # only in-flight calls were re-sent
        fresh = assay(
            "run",
            *args,
            "--base-url",
            srv.base_url,
            "--no-cache",
            "--store",
            str(tmp_path / "fresh"),
        )
    a, b = json.loads(resumed.stdout), json.loads(fresh.stdout)
    for va, vb in zip(a["variants"], b["variants"], strict=True):
        assert va["score"] == vb["score"] and va["cost_per_1k_usd"] == vb["cost_per_1k_usd"]
    assert a["comparisons"] == b["comparisons"] and a["status"] == "complete"
    assert RunStore.open(os.environ["ASSAY_STORE"]).integrity_problems() == []


@pytest.mark.model
def test_demo_slice_on_the_embedded_model(tmp_path: Path) -> None:
    args = ("--demo", "--limit", "6", "--json", "--gpu-cost-per-hour", "2.0")
    # A process of its own: a native crash in the embedded model must not end pytest.
    proc = assay_process("run", *args, "-o", str(tmp_path / "r.json"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert len(report["variants"]) == 2
    for variant in report["variants"]:
        assert variant["n_requests"] == 6 and variant["n_errors"] == 0
        assert variant["score"]["n_scored"] == 6  # every response judged, right or wrong
        assert variant["cost_per_1k_usd"] == 0.0
        assert variant["output_tokens_per_request"] > 0
        # Self-hosting estimate: mean latency over 4 parallel slots, at $2 an hour.
        expected = variant["latency_mean_ms"] / 1000 / 4 * 1000 / 3600 * 2.0
        assert variant["self_hosting_cost_per_1k_usd"] == pytest.approx(expected)


def test_a_data_file_changed_mid_run_fails_the_run_in_one_line(tmp_path: Path) -> None:
    """A file too large to keep parsed is re-read for the calls: an edit during the run ends
    it as failed, not as a crash and not silently with rows the run did not validate."""
    data = tmp_path / "d.jsonl"
    pad = "x" * (KeepRows().max_bytes // 350)  # 400 rows: past what a dataset keeps parsed
    rows = [{"text": f"review {i} " + pad, "label": "positive"} for i in range(400)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    edited = False
    zoo = LabelZoo()

    def handler(request: object) -> object:
        nonlocal edited
        if not edited:  # the run is past its checks and reading the rows for calls
            edited = True
            data.write_text(data.read_text(encoding="utf-8").replace("review 399", "edited"))
        return zoo(request)  # type: ignore[arg-type]

    with ScriptedServer(handler) as srv:  # type: ignore[arg-type]
        args = ["run", str(data), str(demo_path("sentiment_prompt.md")), "-m", "compat/acc90"]
        proc = assay(*args, "--base-url", srv.base_url, "--metric", "label", "--concurrency", "1")
    assert proc.returncode == 1
    assert "changed since it was loaded" in proc.stderr and "Traceback" not in proc.stderr
    (run,) = RunStore.open(os.environ["ASSAY_STORE"]).list_runs()
    assert run.status == "failed"
