"""Several Assay processes at once on one run store and one cache ($ASSAY_STORE).

SQLite in WAL mode with a busy timeout: no lost writes, no duplicate run ids, no
"database is locked", and every report complete.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from assay.data import demo_path
from assay.engine.cache import ResponseCache
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import LabelZoo, assay

PROMPT = str(demo_path("sentiment_prompt.md"))
ROWS = 30


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "assay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> dict:  # type: ignore[type-arg]
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "locked" not in err.lower() and "Traceback" not in err
    return json.loads(out)  # type: ignore[no-any-return]


def run_args(data: Path, base_url: str, *models: str) -> list[str]:
    flags = [flag for m in models for flag in ("-m", f"compat/{m}")]
    args = ["run", str(data), PROMPT, *flags, "--base-url", base_url, "--metric", "label"]
    return [*args, "--concurrency", "8", "--json"]


def test_two_runs_at_once_on_one_store_lose_nothing(tmp_path: Path) -> None:
    """The same requests from two processes: both race for the same cache keys."""
    data = small_dataset(tmp_path / "d.jsonl", ROWS)
    with ScriptedServer(LabelZoo()) as srv:
        procs = [start(*run_args(data, srv.base_url, "acc90", "acc60")) for _ in range(2)]
        reports = [finish(p) for p in procs]
    assert reports[0]["run_id"] != reports[1]["run_id"]
    for report in reports:
        assert report["status"] == "complete"
        for variant in report["variants"]:
            assert variant["n_requests"] == ROWS and variant["score"]["n_scored"] == ROWS
    assert [v["score"] for v in reports[0]["variants"]] == [
        v["score"] for v in reports[1]["variants"]
    ]
    store = RunStore.open(os.environ["ASSAY_STORE"])
    runs = store.list_runs()
    assert sorted(r.id for r in runs) == sorted(r["run_id"] for r in reports)
    for run in runs:
        assert run.status == "complete"
        assert len(store.results(run.id)) == 2 * ROWS  # no lost writes
        assert len(store.samples(run.id)) == ROWS
    assert store.integrity_problems() == []
    cache = sqlite3.connect(Path(os.environ["ASSAY_STORE"]) / "cache.sqlite")
    assert cache.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 2 * ROWS
    assert cache.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache.close()


def test_a_run_an_optimize_and_readers_at_once(tmp_path: Path) -> None:
    """Different kinds of writers, plus `assay runs` reading while they write."""
    data = small_dataset(tmp_path / "d.jsonl", ROWS)
    good = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
    with (
        ScriptedServer(LabelZoo()) as runs_srv,
        ScriptedServer(OptimizeZoo([proposal(good)])) as srv,
    ):
        run = start(*run_args(data, runs_srv.base_url, "acc90", "acc60"))
        opt = start(
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
            "--batch-size",
            "6",
            "--strategy",
            "iterative",
            "--max-iterations",
            "2",
            "--concurrency",
            "8",
            "--json",
        )
        listings = []
        while run.poll() is None or opt.poll() is None:
            listing = assay("runs", "--json")
            assert listing.returncode == 0, listing.stderr
            listings.append(json.loads(listing.stdout))
            time.sleep(0.05)
        run_report, opt_result = finish(run), finish(opt)
    assert listings  # the store was read while both wrote to it
    assert run_report["status"] == "complete" and opt_result["status"] == "complete"
    assert opt_result["final"]["test"]["n_scored"] == opt_result["split"]["test"]
    store = RunStore.open(os.environ["ASSAY_STORE"])
    ids = [r.id for r in store.list_runs()]
    assert len(ids) == len(set(ids)) == 2
    assert len(store.results(run_report["run_id"])) == 2 * ROWS
    assert len(store.iterations(opt_result["run_id"])) == opt_result["iterations"] + 1
    assert store.integrity_problems() == []


def open_new_store(folder: Path, start: Barrier, results: Queue[str]) -> None:
    start.wait()
    try:
        RunStore.open(folder)
        ResponseCache(folder / "cache.sqlite")
        results.put("ok")
    except Exception as exc:
        results.put(repr(exc))


def test_two_processes_creating_one_store_at_once_both_open_it(tmp_path: Path) -> None:
    """Both switch the new files to WAL; SQLite answers the loser "database is locked" at once,
    without waiting. Before the wait, about one new store in six failed this way."""
    fork = multiprocessing.get_context("fork")
    failures = []
    for trial in range(60):
        start, results = fork.Barrier(2), fork.Queue()
        procs = [
            fork.Process(target=open_new_store, args=(tmp_path / str(trial), start, results))
            for _ in range(2)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
        failures += [r for r in (results.get(timeout=5) for _ in procs) if r != "ok"]
    assert failures == []
