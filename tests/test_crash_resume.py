"""kill -9 at seeded points, resume, and get exactly what an uninterrupted run gets.

The scripted server itself pulls the trigger: on the k-th request it receives, it SIGKILLs
the CLI process (k drawn by ``random.Random(seed)``), so the kill lands between any two
model calls, mid-flight with 4 calls in the air, or while results are being written. Then
``--resume`` must finish the job without re-sending a completed call, end with the same
scores (and, for optimize, the same chosen prompt) as an uninterrupted run, and leave a run
store that passes its integrity check.

Damaged cache entries and store files are the other half: detected, repaired or reported
in one line, never silently used.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assay.data import demo_path
from assay.records import Completion, sha256_text
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import Action, ChatRequest, ScriptedServer
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import LabelZoo, assay, write_prices

PROMPT = str(demo_path("sentiment_prompt.md"))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
RUN_ROWS = 20  # x 2 models = 40 calls
OPT_ROWS = 48  # val 24 rows (--split below): enough to confirm the good rewrite
CONCURRENCY = 4
RUN_SEEDS = range(10)
OPTIMIZE_SEEDS = range(10)  # 20 seeded kill points, plus the fixed ones below
PLAN = [
    proposal(f"{GOOD} Variant {i}.") if i % 2 else proposal(f"A {i} long story.") for i in range(8)
]


class Killer:
    """Wraps a handler; SIGKILLs the armed process when the ``at``-th request arrives."""

    def __init__(self, inner: Callable[[ChatRequest], Action], at: int | None = None) -> None:
        self.inner = inner
        self.at = at
        self.pid: int | None = None
        self.seen = 0
        self.fired = threading.Event()
        self._lock = threading.Lock()

    def arm(self, pid: int, at: int) -> None:
        with self._lock:
            self.pid, self.at, self.seen = pid, at, 0
            self.fired.clear()

    def __call__(self, request: ChatRequest) -> Action:
        with self._lock:
            self.seen += 1
            if self.pid is not None and self.at is not None and self.seen >= self.at:
                os.kill(self.pid, signal.SIGKILL)
                self.pid = None
                self.fired.set()
        return self.inner(request)


def start_and_kill(killer: Killer, args: list[str], at: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "assay", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer.arm(proc.pid, at)
    _, stderr = proc.communicate(timeout=90)
    assert killer.fired.is_set(), f"finished before request {at}: {stderr}"
    assert proc.returncode == -signal.SIGKILL


def only_run(store: RunStore) -> str:
    (run,) = store.list_runs()
    return run.id


def request_key(result: ResultRecord) -> tuple[str, str]:
    """(system prompt, last user text) of a stored request."""
    messages = result.request.messages
    system = next((m.content for m in messages if m.role == "system"), "")
    return system, messages[-1].content


# --------------------------------------------------------------------------- assay run


def run_args(data: Path, base_url: str) -> list[str]:
    return [
        "run",
        str(data),
        PROMPT,
        "-m",
        "compat/acc90",
        "-m",
        "compat/acc60",
        "--base-url",
        base_url,
        "--metric",
        "label",
        "--concurrency",
        str(CONCURRENCY),
        "--json",
    ]


@dataclass(frozen=True)
class Baseline:
    data: Path
    result: dict[str, Any]
    calls: int


@pytest.fixture(scope="module")
def run_baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    root = tmp_path_factory.mktemp("run-baseline")
    data = small_dataset(root / "d.jsonl", RUN_ROWS)
    zoo = LabelZoo(delays={"acc90": 0.01, "acc60": 0.01})
    with ScriptedServer(zoo) as srv:
        args = [*run_args(data, srv.base_url), "--store", str(root / "store")]
        proc = assay(*args)
        calls = srv.count
    assert proc.returncode == 0, proc.stderr
    assert calls == 2 * RUN_ROWS and set(zoo.arrivals.values()) == {1}
    return Baseline(data, json.loads(proc.stdout), calls)


def same_run_result(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["status"] == b["status"] == "complete"
    keys = ("variant", "score", "metrics", "n_requests", "n_errors", "cost_per_1k_usd")
    for va, vb in zip(a["variants"], b["variants"], strict=True):
        assert {k: va[k] for k in keys} == {k: vb[k] for k in keys}
    assert a["comparisons"] == b["comparisons"]
    assert a["pareto_quality_cost"] == b["pareto_quality_cost"]


@pytest.mark.parametrize("seed", RUN_SEEDS)
def test_run_killed_at_a_seeded_point_resumes_to_the_same_result(
    seed: int, run_baseline: Baseline
) -> None:
    at = random.Random(seed).randint(1, run_baseline.calls - 1)
    zoo = LabelZoo(delays={"acc90": 0.01, "acc60": 0.01})
    killer = Killer(zoo)
    with ScriptedServer(killer) as srv:
        start_and_kill(killer, run_args(run_baseline.data, srv.base_url), at)
        store = RunStore.open(os.environ["ASSAY_STORE"])
        run_id = only_run(store)
        done = {
            (r.variant.removeprefix("compat/"), r.request.messages[-1].content)
            for r in store.results(run_id)
        }
        assert len(done) <= at  # a result is saved only after its call
        resumed = assay("run", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    for key in done:  # no completed call is ever sent again
        assert zoo.arrivals[key] == 1, key
    assert len(zoo.arrivals) == run_baseline.calls  # every item was called
    resent = [k for k, n in zoo.arrivals.items() if n > 1]
    assert len(resent) <= CONCURRENCY and max(zoo.arrivals.values()) <= 2  # in flight only
    same_run_result(json.loads(resumed.stdout), run_baseline.result)
    assert len(store.results(run_id)) == run_baseline.calls
    assert store.integrity_problems() == []


def test_run_killed_twice_still_resumes_to_the_same_result(run_baseline: Baseline) -> None:
    zoo = LabelZoo(delays={"acc90": 0.01, "acc60": 0.01})
    killer = Killer(zoo)
    store = RunStore.open(os.environ["ASSAY_STORE"])
    with ScriptedServer(killer) as srv:
        start_and_kill(killer, run_args(run_baseline.data, srv.base_url), 9)
        run_id = only_run(store)
        done_first = {(r.variant, r.sample_id) for r in store.results(run_id)}
        start_and_kill(killer, ["run", "--resume", run_id, "--json"], 30)
        done_second = {(r.variant, r.sample_id) for r in store.results(run_id)}
        resumed = assay("run", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert done_first < done_second  # the resumed session saved work before its own kill
    assert max(zoo.arrivals.values()) <= 3 and len(zoo.arrivals) == run_baseline.calls
    assert sum(zoo.arrivals.values()) <= run_baseline.calls + 2 * 16  # only in-flight re-sent
    same_run_result(json.loads(resumed.stdout), run_baseline.result)
    assert store.integrity_problems() == []


class InFlight:
    """A label model that records the most requests it ever had in flight at once."""

    def __init__(self) -> None:
        self.zoo = LabelZoo(tokens=(40, 2))
        self.now = 0
        self.peak = 0

    async def __call__(self, request: ChatRequest) -> Action:
        self.now += 1  # handlers run on the server's one event loop: no lock needed
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.03)
        self.now -= 1
        return self.zoo(request)


def test_resume_keeps_the_runs_concurrency_and_budget(tmp_path: Path) -> None:
    """Only what the resume command line says changes; the run's own limits stay."""
    data = small_dataset(tmp_path / "d.jsonl", 20)
    prices = write_prices(tmp_path / "prices.json", {"acc90": (2.0, 8.0)})
    model = InFlight()
    killer = Killer(model)  # type: ignore[arg-type]
    args = ["run", str(data), PROMPT, "-m", "compat/acc90", "--metric", "label", "--json"]
    args += ["--concurrency", "2", "--max-tokens", "2", "--max-cost", "0.002"]
    args += ["--prices", str(prices)]
    with ScriptedServer(killer) as srv:
        start_and_kill(killer, [*args, "--base-url", srv.base_url], 3)
        run_id = only_run(RunStore.open(os.environ["ASSAY_STORE"]))
        model.peak = 0
        resumed = assay("run", "--resume", run_id, "--json", "--prices", str(prices))
        served = srv.count
    assert resumed.returncode == 0, resumed.stderr
    assert model.peak <= 2  # not the --concurrency default of 16
    report = json.loads(resumed.stdout)
    assert report["status"] == "stopped" and "budget" in report["stopped_reason"].lower()
    assert served < 20


def test_resume_charges_the_interrupted_sessions_spend_to_the_budget(tmp_path: Path) -> None:
    """--max-cost is for the whole run: a resumed session gets only what is left of it."""
    data = small_dataset(tmp_path / "d.jsonl", 40)
    prices = write_prices(tmp_path / "prices.json", {"acc90": (2.0, 8.0)})
    per_call = (40 * 2.0 + 2 * 8.0) / 1e6  # every reply reports 40 tokens in, 2 out
    budget = 20 * per_call
    zoo = LabelZoo(tokens=(40, 2))
    killer = Killer(zoo)
    args = ["run", str(data), PROMPT, "-m", "compat/acc90", "--metric", "label", "--json"]
    args += ["--concurrency", "1", "--max-tokens", "2", "--max-cost", f"{budget:.8f}"]
    args += ["--prices", str(prices)]
    with ScriptedServer(killer) as srv:
        start_and_kill(killer, [*args, "--base-url", srv.base_url], 10)
        store = RunStore.open(os.environ["ASSAY_STORE"])
        run_id = only_run(store)
        before = len(store.results(run_id))
        # No --prices: the run was stored with the prices it started with.
        resumed = assay("run", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "stopped" and "budget" in report["stopped_reason"].lower()
    results = store.results(run_id)
    costs = [r.completion.cost_usd for r in results if r.completion]
    assert costs == pytest.approx([per_call] * len(costs))  # priced as when the run started
    paid = sum(r.completion.cost_usd or 0.0 for r in results if r.completion)
    assert before >= 5 and len(results) > before  # both sessions did work
    assert paid <= budget + 1e-12  # the two sessions together stayed within --max-cost


# --------------------------------------------------------------------------- assay optimize


def optimize_args(data: Path, base_url: str) -> list[str]:
    return [
        "optimize",
        str(data),
        PROMPT,
        "-m",
        "compat/task",
        "--base-url",
        base_url,
        "--reasoning-model",
        "compat/reasoner",
        "--reasoning-base-url",
        base_url,
        "--metric",
        "label",
        "--batch-size",
        "6",
        "--strategy",
        "iterative",
        "--max-iterations",
        "3",
        "--patience",
        "10",
        "--split",
        "0.25,0.5,0.25",
        "--concurrency",
        str(CONCURRENCY),
        "--json",
    ]


@pytest.fixture(scope="module")
def optimize_baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    root = tmp_path_factory.mktemp("optimize-baseline")
    data = small_dataset(root / "d.jsonl", OPT_ROWS)
    zoo = OptimizeZoo(PLAN, delay=0.01)
    with ScriptedServer(zoo) as srv:
        proc = assay(*optimize_args(data, srv.base_url), "--store", str(root / "store"))
        calls = srv.count
        assert max(srv.count_for(r.attempt_key) for r in srv.requests) == 1
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # The scenario is worth resuming: a rejection, an acceptance and a real test gain.
    statuses = [r["status"] for r in result["trajectory"]]
    assert "accepted" in statuses and "rejected" in statuses
    assert result["final"]["test"]["mean"] > result["baseline"]["test"]["mean"]
    return Baseline(data, result, calls)


def same_optimize_result(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["status"] == b["status"] == "complete"
    assert a["best_prompt"] == b["best_prompt"]
    assert a["final"] == b["final"] and a["baseline"] == b["baseline"]
    assert a["gain"] == b["gain"] and a["accepted"] == b["accepted"]

    def steps(result: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(r["status"], r["reason"], r["prompt_hash"]) for r in result["trajectory"]]

    assert steps(a) == steps(b)


@pytest.mark.parametrize("seed", OPTIMIZE_SEEDS)
def test_optimize_killed_at_a_seeded_point_resumes_to_the_same_prompt(
    seed: int, optimize_baseline: Baseline
) -> None:
    at = random.Random(1000 + seed).randint(1, optimize_baseline.calls - 1)
    zoo = OptimizeZoo(PLAN, delay=0.01)
    killer = Killer(zoo)
    with ScriptedServer(killer) as srv:
        start_and_kill(killer, optimize_args(optimize_baseline.data, srv.base_url), at)
        store = RunStore.open(os.environ["ASSAY_STORE"])
        run_id = only_run(store)
        done = {request_key(r) for r in store.results(run_id)}
        resumed = assay("optimize", "--resume", run_id, "--json")
        sent = Counter(r.attempt_key for r in srv.requests)
    assert resumed.returncode == 0, resumed.stderr
    task_calls = Counter((system, text) for model, system, text in zoo.log if model == "task")
    for key in done:  # no completed call is ever sent again
        assert task_calls[key] == 1, key
    resent = [k for k, n in sent.items() if n > 1]
    assert len(resent) <= CONCURRENCY + 1 and max(sent.values()) <= 2  # in flight only
    same_optimize_result(json.loads(resumed.stdout), optimize_baseline.result)
    assert store.integrity_problems() == []


# --------------------------------------------------------------------------- damaged files


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, ScriptedServer]]:
    """4 samples and a label model that stays up for the whole test."""
    with ScriptedServer(LabelZoo()) as srv:
        yield small_dataset(tmp_path / "d.jsonl", 4), srv


def simple_run(data: Path, srv: ScriptedServer, *extra: str) -> subprocess.CompletedProcess[str]:
    return assay(
        "run",
        str(data),
        PROMPT,
        "-m",
        "compat/acc90",
        "--base-url",
        srv.base_url,
        "--metric",
        "label",
        "--json",
        *extra,
    )


def cache_path() -> Path:
    return Path(os.environ["ASSAY_STORE"]) / "cache.sqlite"


def _text_changed(text: str, checksum: str) -> tuple[str, str]:
    data = json.loads(text)
    data["text"] = "TAMPERED"
    return json.dumps(data), checksum


def _half_written(text: str, checksum: str) -> tuple[str, str]:
    return text[: len(text) // 2], checksum


def _half_written_checksum_matches(text: str, checksum: str) -> tuple[str, str]:
    half = text[: len(text) // 2]
    return half, sha256_text(half)


def _wrong_shape_checksum_matches(text: str, checksum: str) -> tuple[str, str]:
    wrong = json.dumps({"text": ["not", "a", "string"], "input_tokens": "many"})
    return wrong, sha256_text(wrong)


def _checksum_blank(text: str, checksum: str) -> tuple[str, str]:
    return text, ""


TAMPERS = [
    _text_changed,
    _half_written,
    _half_written_checksum_matches,
    _wrong_shape_checksum_matches,
    _checksum_blank,
]


def test_a_damaged_cache_entry_is_never_used_and_is_repaired(tmp_path: Path) -> None:
    """Six cached replies; five are damaged, each in its own way, and one is left whole."""
    data = small_dataset(tmp_path / "d.jsonl", len(TAMPERS) + 1)
    with ScriptedServer(LabelZoo()) as srv:
        first = simple_run(data, srv)
        assert first.returncode == 0, first.stderr
        db = sqlite3.connect(cache_path())
        rows = db.execute(
            "SELECT key, completion, checksum FROM completions ORDER BY key"
        ).fetchall()
        assert len(rows) == srv.count == len(TAMPERS) + 1
        with db:
            for (key, text, checksum), tamper in zip(rows, TAMPERS, strict=False):
                new_text, new_checksum = tamper(text, checksum)
                db.execute(
                    "UPDATE completions SET completion = ?, checksum = ? WHERE key = ?",
                    (new_text, new_checksum, key),
                )
        second = simple_run(data, srv)
        assert second.returncode == 0, second.stderr
        assert "Traceback" not in second.stderr
        assert srv.count == len(rows) + len(TAMPERS)  # each damaged entry called again, once
    (before,), (after,) = (
        json.loads(first.stdout)["variants"],
        json.loads(second.stdout)["variants"],
    )
    assert after["score"] == before["score"] and after["cached_requests"] == 1
    store = RunStore.open(os.environ["ASSAY_STORE"])
    results = store.results(store.list_runs()[0].id)
    assert all(r.completion is not None and "TAMPERED" not in r.completion.text for r in results)
    # Repaired: every entry is whole again, with a checksum that matches.
    repaired = db.execute("SELECT completion, checksum FROM completions").fetchall()
    assert len(repaired) == len(rows)
    for text, checksum in repaired:
        assert sha256_text(text) == checksum
        Completion.model_validate_json(text)
    db.close()


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_a_cache_file_that_is_not_a_database_is_reported_in_one_line(
    served: tuple[Path, ScriptedServer],
) -> None:
    data, srv = served
    assert simple_run(data, srv).returncode == 0
    cache_path().write_bytes(b"\x00garbage" * 512)
    line = one_error_line(simple_run(data, srv))
    assert "cache.sqlite" in line and "--no-cache" in line
    assert len(RunStore.open(os.environ["ASSAY_STORE"]).list_runs()) == 1  # nothing added
    bypass = simple_run(data, srv, "--no-cache")  # the fix the message names works
    assert bypass.returncode == 0, bypass.stderr


@pytest.mark.parametrize("damage", ["truncated", "page-overwritten"])
def test_a_damaged_run_store_is_reported_in_one_line_by_every_command(
    served: tuple[Path, ScriptedServer], damage: str
) -> None:
    data, srv = served
    run_id = json.loads(simple_run(data, srv).stdout)["run_id"]
    path = Path(os.environ["ASSAY_STORE"]) / "runs.sqlite"
    size, root = path.stat().st_size, _rootpage(path, "results")
    with path.open("r+b") as f:
        if damage == "truncated":
            f.truncate(size // 2)
        else:  # a page of the results table: the schema still opens, queries fail
            f.seek((root - 1) * 4096)
            f.write(b"\xff" * 4096)
    commands = [
        ["show", run_id, "--samples"],
        ["run", "--resume", run_id, "--json"],
        ["run", str(data), PROMPT, "-m", "compat/acc90", "--base-url", srv.base_url,
         "--metric", "label", "--json"],
    ]  # fmt: skip
    if damage == "truncated":  # (`assay runs` reads no results page, so it still works)
        commands.append(["runs"])
    for args in commands:
        line = one_error_line(assay(*args))
        assert "store" in line and ("malformed" in line or "unreadable" in line), line


def _rootpage(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
    finally:
        db.close()
    return int(root)
