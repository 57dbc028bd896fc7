"""Liveness: one process holds a run at a time (a lease with a heartbeat), a run never ends
``running`` (SIGTERM, a full disk), a run whose every call failed ends ``failed``, and values
that would crash a run after paying for it (a negative seed, an infinite timeout) are refused
before any call."""

from __future__ import annotations

import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from assay import api
from assay.benchmark.config import RunConfig
from assay.data import demo_path
from assay.engine.engine import EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.jobs import BenchmarkJob, Session
from assay.jobs.lease import LEASE_STALE_ENV, RunLeased
from assay.optimizer.config import OptimizeConfig, SplitConfig
from assay.providers.specs import resolve_model
from assay.records import GenerationParams
from assay.store.runstore import Lease, ResultRecord, RunStore
from assay.testing import ScriptedServer, error
from tests.optimize_helpers import small_dataset
from tests.run_helpers import LabelZoo, assay, child_run_progress

PROMPT = str(demo_path("sentiment_prompt.md"))
ROWS = 30  # x 2 models = 60 calls


def run_args(data: Path, store: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "run",
        str(data),
        PROMPT,
        "-m",
        "compat/acc90",
        "-m",
        "compat/acc60",
        "--metric",
        "label",
        "--concurrency",
        "2",
        "--max-tokens",
        "2",
        "--store",
        str(store),
        "--base-url",
        base_url,
        *extra,
    ]


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "assay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for_results(store_dir: Path, n: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while (seen := child_run_progress(store_dir)) is None or seen[1] < n:
        assert time.monotonic() < deadline, "the child saved too few results in time"
        time.sleep(0.02)
    return seen[0]


def results(store_dir: Path, run_id: str) -> list[ResultRecord]:
    store = RunStore.open(store_dir)
    try:
        return store.results(run_id)
    finally:
        store.close()


def status_of(store_dir: Path, run_id: str) -> str:
    store = RunStore.open(store_dir)
    try:
        return store.get_run(run_id).status
    finally:
        store.close()


def done_keys(store_dir: Path, run_id: str) -> set[tuple[str, str]]:
    """(model, input) of every saved result: LabelZoo's arrival keys."""
    return {
        (r.variant.removeprefix("compat/"), r.request.messages[-1].content)
        for r in results(store_dir, run_id)
    }


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- 5. leases


def test_resume_while_another_process_runs_the_run_is_refused_and_sends_nothing(
    tmp_path: Path,
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", ROWS)
    store = tmp_path / "store"
    zoo = LabelZoo(delays={"acc90": 0.05, "acc60": 0.05})  # 60 calls, 2 at a time: ~1.5 s
    with ScriptedServer(zoo) as srv:
        proc = start(run_args(data, store, srv.base_url))
        try:
            run_id = wait_for_results(store, 4)
            refused = assay("run", "--resume", run_id, "--store", str(store))
            still_running = proc.poll() is None
            _, first_err = proc.communicate(timeout=60)
        finally:
            stop(proc)
        assert still_running, "the first process ended before the resume was tried"
        assert refused.returncode != 0
        (line,) = error_lines(refused.stderr)
        assert f"pid {proc.pid} on host {socket.gethostname()}" in line, line
        assert "s ago" in line and f"--resume {run_id}" in line
        assert proc.returncode == 0, first_err
        assert max(zoo.arrivals.values()) == 1  # the refused resume sent no call
        assert srv.count == 2 * ROWS
        after = assay("run", "--resume", run_id, "--store", str(store))  # the lease is free
        assert after.returncode == 0, after.stderr
        assert srv.count == 2 * ROWS  # nothing was left to do
    assert status_of(store, run_id) == "complete"


def test_a_lease_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", ROWS)
    store = tmp_path / "store"
    zoo = LabelZoo(delays={"acc90": 0.05, "acc60": 0.05})
    with ScriptedServer(zoo) as srv:
        proc = start(run_args(data, store, srv.base_url))
        try:
            run_id = wait_for_results(store, 4)
            proc.kill()  # kill -9: no chance to release the lease
            proc.wait()
        finally:
            stop(proc)
        done = done_keys(store, run_id)
        lease = _lease(store, run_id)
        assert lease is not None and lease.pid == proc.pid  # left behind, its holder gone
        resumed = assay("run", "--resume", run_id, "--store", str(store))
        assert resumed.returncode == 0, resumed.stderr
    assert status_of(store, run_id) == "complete"
    assert all(zoo.arrivals[key] == 1 for key in done)  # completed calls were not sent again
    assert _lease(store, run_id) is None  # released at the end


def _lease(store_dir: Path, run_id: str) -> Lease | None:
    store = RunStore.open(store_dir)
    try:
        return store.lease(run_id)
    finally:
        store.close()


def _plant_lease(store_dir: Path, run_id: str, age_s: float) -> None:
    """A lease held by a process on another host, last seen ``age_s`` seconds ago."""
    store = RunStore.open(store_dir)
    try:
        lease = Lease(run_id, "elsewhere", 4242, "other-host", time.time() - age_s)
        assert store.insert_lease(lease)
    finally:
        store.close()


def finished_run(tmp_path: Path, srv: ScriptedServer) -> tuple[Path, str]:
    data = small_dataset(tmp_path / "d.jsonl", 3)
    store = tmp_path / "store"
    first = assay(*run_args(data, store, srv.base_url))
    assert first.returncode == 0, first.stderr
    (run_id,) = (r.id for r in RunStore.open(store).list_runs())
    return store, run_id


def test_a_lease_from_another_host_holds_until_it_goes_stale(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        store, run_id = finished_run(tmp_path, srv)
        _plant_lease(store, run_id, age_s=10)
        env = {LEASE_STALE_ENV: "60"}
        refused = assay("run", "--resume", run_id, "--store", str(store), env=env)
        assert refused.returncode != 0
        (line,) = error_lines(refused.stderr)
        assert "pid 4242 on host other-host (seen 10 s ago)" in line, line
        env = {LEASE_STALE_ENV: "5"}  # the same lease, now older than the stale limit
        taken = assay("run", "--resume", run_id, "--store", str(store), env=env)
        assert taken.returncode == 0, taken.stderr
    assert _lease(store, run_id) is None


def test_two_takers_of_one_stale_lease_cannot_both_win(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        store_dir, run_id = finished_run(tmp_path, srv)
    _plant_lease(store_dir, run_id, age_s=600)
    a, b = RunStore.open(store_dir), RunStore.open(store_dir)  # two connections, two processes
    stale = a.lease(run_id)
    assert stale is not None
    mine = Lease(run_id, "a", 1, "h", time.time())
    theirs = Lease(run_id, "b", 2, "h", time.time())
    assert a.take_over_lease(stale, mine) is True
    assert b.take_over_lease(stale, theirs) is False  # it saw the old holder: too late
    assert b.lease(run_id) == mine
    a.close()
    b.close()


class ResumeMidRun:
    """A progress sink that tries to resume the run it is watching, from the same process."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.refusal: Exception | None = None
        self.seen = 0

    def on_result(self, result: ResultRecord) -> None:
        self.seen += 1
        if self.seen == 3:
            try:
                api.run(resume=result.run_id, store=self.store)
            except Exception as exc:  # the test inspects what came out
                self.refusal = exc


def test_a_second_job_on_a_running_run_in_the_same_process_is_refused(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 5)
    store = tmp_path / "store"
    sink = ResumeMidRun(store)
    with ScriptedServer(LabelZoo()) as srv:
        config = RunConfig(
            data=str(data),
            prompts=[PROMPT],
            models=[resolve_model("compat/acc90", base_url=srv.base_url)],
            scoring=ScoringConfig(metrics=["label"]),
            engine=EngineConfig(concurrency=1),
        )
        report = api.run(config, store=store, progress=sink)
        assert srv.count == 5
    assert isinstance(sink.refusal, RunLeased), sink.refusal
    assert f"pid {os.getpid()} on host" in str(sink.refusal)
    assert report.status == "complete"


class ExecuteMidRun:
    """A progress sink that executes another job on the same run while its own runs."""

    def __init__(self, other: BenchmarkJob) -> None:
        self.other = other
        self.refusal: Exception | None = None

    def on_result(self, result: ResultRecord) -> None:
        if self.refusal is None:
            try:
                self.other.execute()
            except Exception as exc:  # the test inspects what came out
                self.refusal = exc


def test_two_jobs_prepared_on_one_run_cannot_both_execute_it(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 4)
    session = Session.open(tmp_path / "store")
    with ScriptedServer(LabelZoo()) as srv:
        config = RunConfig(
            data=str(data),
            prompts=[PROMPT],
            models=[resolve_model("compat/acc90", base_url=srv.base_url)],
            scoring=ScoringConfig(metrics=["label"]),
            engine=EngineConfig(concurrency=1),
        )
        first = BenchmarkJob.prepare(session, config)
        second = BenchmarkJob.resume(session, first.run_id)  # nobody executes it yet
        sink = ExecuteMidRun(second)
        report = first.execute(sink)
        assert srv.count == 4  # the second job sent nothing
    assert isinstance(sink.refusal, RunLeased), sink.refusal
    assert report.status == "complete"
    assert session.store.lease(first.run_id) is None


# --------------------------------------------------------------------------- 9. validation


def _refused_before_any_call(*args: str) -> str:
    data = small_dataset(Path(os.environ["ASSAY_STORE"]).parent / "d.jsonl", 3)
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay(
            *args[:1], str(data), PROMPT, "-m", "compat/acc90", "--base-url", srv.base_url,
            "--metric", "label", *args[1:],
        )  # fmt: skip
        assert srv.count == 0
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["run", "optimize"])
def test_a_negative_seed_is_refused_before_any_call(command: str) -> None:
    assert "--seed" in _refused_before_any_call(command, "--seed", "-1")


@pytest.mark.parametrize("value", ["inf", "nan", "0"])
def test_a_timeout_that_is_not_a_finite_positive_number_is_refused(value: str) -> None:
    assert "timeout" in _refused_before_any_call("run", "--timeout", value)


@pytest.mark.parametrize(
    "build",
    [
        lambda: GenerationParams(seed=-1),
        lambda: SplitConfig(seed=-1),
        lambda: EngineConfig(timeout_s=math.inf),
        lambda: EngineConfig(timeout_s=math.nan),
        lambda: RunConfig(data="d", prompts=["p"], models=[resolve_model("local/x")], seed=-1),
        lambda: OptimizeConfig(data="d", prompt="p", model=resolve_model("local/x"), seed=-1),
    ],
)
def test_the_api_configs_refuse_what_would_crash_a_run(build: Callable[[], object]) -> None:
    with pytest.raises(ValidationError):
        build()


# --------------------------------------------------------------------------- 10. SIGTERM, disk


def test_sigterm_leaves_the_run_interrupted_and_a_resume_repeats_no_call(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", ROWS)
    store = tmp_path / "store"
    zoo = LabelZoo(delays={"acc90": 0.05, "acc60": 0.05})
    with ScriptedServer(zoo) as srv:
        proc = start(run_args(data, store, srv.base_url))
        try:
            run_id = wait_for_results(store, 4)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            stop(proc)
        assert proc.returncode not in (0, -signal.SIGTERM), stderr  # it ended itself
        (line,) = error_lines(stderr)
        assert f"assay run --resume {run_id}" in line, stderr
        assert status_of(store, run_id) == "interrupted"
        done = done_keys(store, run_id)
        assert 4 <= len(done) < 2 * ROWS
        resumed = assay("run", "--resume", run_id, "--store", str(store))
        assert resumed.returncode == 0, resumed.stderr
    assert status_of(store, run_id) == "complete"
    assert all(zoo.arrivals[key] == 1 for key in done)  # completed calls were not sent again
    assert max(zoo.arrivals.values()) <= 2  # only calls in flight at SIGTERM were re-sent


def test_a_full_disk_says_so_and_how_to_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = 0
    save_results = RunStore.save_results  # a run's results are written in group commits

    def fill_up(self: RunStore, *args: object, **kwargs: object) -> None:
        nonlocal saved
        if saved == 2:
            raise sqlite3.OperationalError("database or disk is full")
        saved += 1
        save_results(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RunStore, "save_results", fill_up)
    data = small_dataset(tmp_path / "d.jsonl", 5)
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay(*run_args(data, tmp_path / "store", srv.base_url))
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    (run_id,) = (r.id for r in RunStore.open(tmp_path / "store").list_runs())
    line = line.lower()
    assert "disk" in line and "full" in line and "free" in line, line
    assert f"--resume {run_id}" in line and "damaged" not in line and "move it" not in line


def test_a_full_disk_outside_a_run_is_not_called_damage(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: RunStore, limit: int = 50) -> list[object]:
        raise sqlite3.OperationalError("database or disk is full")

    RunStore.open(os.environ["ASSAY_STORE"]).close()
    monkeypatch.setattr(RunStore, "list_runs", full)
    proc = assay("runs")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "full" in line and "free" in line and "damaged" not in line, line


# --------------------------------------------------------------------------- 17. all failed


@pytest.mark.parametrize(
    ("action", "kind"),
    [(error(500, "internal meltdown", retry_after=0.01), "500"), (error(400, "bad model"), "400")],
)
def test_a_run_whose_every_call_failed_ends_failed(
    tmp_path: Path, action: object, kind: str
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 4)
    store = tmp_path / "store"
    with ScriptedServer(lambda _r: action) as srv:  # type: ignore[arg-type, return-value]
        proc = assay(
            "run", str(data), PROMPT, "-m", "compat/m", "--base-url", srv.base_url,
            "--metric", "label", "--store", str(store), "--json",
        )  # fmt: skip
    assert proc.returncode != 0
    (line,) = error_lines(proc.stderr)
    assert "all 4 calls failed" in line, line
    assert ("internal meltdown" if kind == "500" else "bad model") in line
    (run,) = RunStore.open(store).list_runs()
    assert run.status == "failed"
