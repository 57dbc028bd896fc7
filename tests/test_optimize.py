"""``assay optimize`` against a scripted task model and a scripted reasoning model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assay.data import demo_path, load_dataset
from assay.data.prompts import load_prompt
from assay.optimizer.config import SplitConfig
from assay.optimizer.split import split_samples
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.optimize_helpers import MAGIC, OptimizeZoo, optimize_args, proposal, small_dataset
from tests.run_helpers import assay, assay_process

PROMPT = str(demo_path("sentiment_prompt.md"))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."


def run_optimize(srv: ScriptedServer, data: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    proc = assay(*optimize_args(srv, data, *extra))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_good_rewrite_is_accepted_and_the_saved_prompt_is_the_scored_one(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    out = tmp_path / "best.md"
    zoo = OptimizeZoo([proposal(GOOD, think=True)])
    with ScriptedServer(zoo) as srv:
        result = run_optimize(
            srv,
            data,
            "--max-iterations",
            "2",
            "-o",
            str(out),
            "--results-json",
            str(tmp_path / "r.json"),
        )
        assert result["schema"] == "assay.optimize/v1"
        assert result["accepted"] >= 1
        assert result["best_prompt"] == GOOD  # the think block's decoy prompt was ignored
        saved = load_prompt(out)
        assert saved.text == GOOD and saved.hash == result["final"]["prompt_hash"]
        # Score the saved file independently on the test rows: the same number comes back.
        store = RunStore.open(os.environ["ASSAY_STORE"])
        test_ids = set(store.get_run(result["run_id"]).config.split_ids("test"))
        rows = [
            line
            for line in data.read_text().splitlines()
            if str(json.loads(line).get("id")) in test_ids
        ]
        test_file = tmp_path / "test_rows.jsonl"
        test_file.write_text("\n".join(rows) + "\n")
        check = assay(
            "run",
            str(test_file),
            str(out),
            "-m",
            "compat/task",
            "--base-url",
            srv.base_url,
            "--metric",
            "label",
            "--json",
        )
    assert check.returncode == 0, check.stderr
    rescored = json.loads(check.stdout)["variants"][0]["score"]
    assert rescored["mean"] == pytest.approx(result["final"]["test"]["mean"])
    assert rescored["n_scored"] == result["final"]["test"]["n_scored"] == len(test_ids)
    assert result["final"]["test"]["mean"] > result["baseline"]["test"]["mean"]
    assert json.loads((tmp_path / "r.json").read_text()) == result


def test_no_test_sample_reaches_any_model_during_the_loop(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    zoo = OptimizeZoo([proposal(GOOD)])
    with ScriptedServer(zoo) as srv:
        result = run_optimize(srv, data, "--max-iterations", "2")
    store = RunStore.open(os.environ["ASSAY_STORE"])
    stored = store.get_run(result["run_id"]).config
    samples = {s.id: s for s in load_dataset(data).samples}
    test_texts = {samples[i].input_text() for i in stored.split_ids("test")}
    held_out = test_texts | {samples[i].input_text() for i in stored.split_ids("val")}
    last_reasoner = max(i for i, (model, _, _) in enumerate(zoo.log) if model == "reasoner")
    first_test = min(i for i, (_, _, text) in enumerate(zoo.log) if text in test_texts)
    assert first_test > last_reasoner  # test rows are touched only after the loop
    prompts_on_test = {system for _, system, text in zoo.log if text in test_texts}
    assert prompts_on_test <= {load_prompt(PROMPT).text, result["best_prompt"]}
    for request in zoo.reasoner_requests:  # the reasoner sees train rows only
        assert not any(text in request for text in held_out)


def test_unusable_proposals_are_rejected_with_reasons(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    baseline = load_prompt(PROMPT).text
    split = split_samples(load_dataset(data).samples, SplitConfig())  # the CLI's defaults
    leaked = split.val[0].input_text()

    def plan(index: int) -> str:
        if index < 3:
            return "I think the prompt is fine. Score: 5"  # no <prompt>: asked 3 times
        return {
            3: proposal(f"{MAGIC}. For example: {leaked}"),  # copies a val row
            4: proposal(baseline),  # no change
            5: proposal("{{text}} " + MAGIC),  # adds a slot the prompt does not have
        }.get(index, proposal("Short."))  # too short to be a prompt: truncated

    zoo = OptimizeZoo(plan)
    with ScriptedServer(zoo) as srv:
        result = run_optimize(srv, data, "--max-iterations", "5", "--patience", "10")
    reasons = [r["reason"] for r in result["trajectory"][1:]]
    assert "unparsable reasoner reply" in reasons[0]
    assert "leak" in reasons[1] and split.val[0].id in reasons[1]
    assert "no change" in reasons[2]
    assert "adds template slots" in reasons[3]
    assert "empty or truncated" in reasons[4]
    assert all(r["status"] == "rejected" for r in result["trajectory"][1:])
    assert result["best_prompt"] == baseline and result["accepted"] == 0
    # The rewrite log the reasoner sees says what happened to each earlier attempt.
    assert "rejected: unparsable reasoner reply" in zoo.reasoner_requests[3]
    assert "a leak" in zoo.reasoner_requests[4]


def test_patience_ends_the_run_when_nothing_helps(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    worse = "Reply with a long story about the review."
    zoo = OptimizeZoo(lambda i: proposal(f"{worse} Variant {i}."))
    with ScriptedServer(zoo) as srv:
        result = run_optimize(srv, data, "--max-iterations", "10", "--patience", "2")
    assert result["iterations"] == 2 and "patience" in result["stopped_reason"]
    assert result["best_prompt"] == load_prompt(PROMPT).text


def test_target_stops_as_soon_as_val_reaches_it(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    with ScriptedServer(OptimizeZoo([proposal(GOOD)])) as srv:
        result = run_optimize(srv, data, "--max-iterations", "10", "--target", "0.6")
    assert result["iterations"] == 1 and "target" in result["stopped_reason"]


def test_call_budget_stops_the_loop_but_keeps_room_for_the_test(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    zoo = OptimizeZoo(lambda i: proposal(f"{GOOD} Variant {i}."))
    with ScriptedServer(zoo) as srv:
        result = run_optimize(
            srv, data, "--max-iterations", "50", "--patience", "50", "--max-calls", "150"
        )
        served = srv.count
    assert "budget" in result["stopped_reason"]
    assert served <= 150 and result["spend"]["calls"] == served
    assert result["final"]["test"]["n_scored"] == result["split"]["test"]


def test_kill_and_resume_repeats_no_call_and_ends_like_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    plan = [
        proposal(f"{GOOD} Variant {i}.") if i % 2 else proposal(f"A {i} long story.")
        for i in range(8)
    ]
    extra = ("--max-iterations", "4", "--patience", "10", "--concurrency", "4")
    zoo = OptimizeZoo(plan, delay=0.02)
    with ScriptedServer(zoo) as srv:
        args = optimize_args(srv, data, *extra)
        proc = subprocess.Popen(
            [sys.executable, "-m", "assay", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        store = RunStore.open(os.environ["ASSAY_STORE"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = store.list_runs()
            if runs and len(store.iterations(runs[0].id)) >= 3:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        run_id = store.list_runs()[0].id
        assert 3 <= len(store.iterations(run_id)) < 5
        resumed = assay("optimize", "--resume", run_id, "--json")
        assert resumed.returncode == 0, resumed.stderr
        counts: dict[tuple[str, str, str], int] = {}
        for entry in zoo.log:
            counts[entry] = counts.get(entry, 0) + 1
        repeated = [k for k, n in counts.items() if n > 1]
        assert len(repeated) <= 4 + 1  # at most the calls in flight at the kill
        assert all(n <= 2 for n in counts.values())
    with ScriptedServer(OptimizeZoo(plan, delay=0.0)) as fresh_srv:
        fresh = run_optimize(fresh_srv, data, *extra, "--store", str(tmp_path / "fresh"))
    result = json.loads(resumed.stdout)
    assert result["best_prompt"] == fresh["best_prompt"]
    assert result["final"] == fresh["final"] and result["baseline"] == fresh["baseline"]
    assert [r["status"] for r in result["trajectory"]] == [r["status"] for r in fresh["trajectory"]]
    assert result["spend"]["calls"] >= fresh["spend"]["calls"] - 5
    assert store.integrity_problems() == []


@pytest.mark.model
def test_embedded_model_optimizes_end_to_end_and_keeps_test_unseen(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 30)
    out = tmp_path / "best.md"
    proc = assay_process(  # the embedded model: a native crash must not end pytest
        "optimize",
        str(data),
        PROMPT,
        "-m",
        "local/smollm2",
        "--metric",
        "label",
        "--max-iterations",
        "1",
        "--max-tokens",
        "8",
        "--reasoning-max-tokens",
        "96",
        "--batch-size",
        "6",
        "-o",
        str(out),
        "--json",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["iterations"] == 1
    assert result["trajectory"][1]["status"] in ("accepted", "rejected")
    assert result["trajectory"][1]["reason"]  # a weak reasoner's proposal gets a stated verdict
    assert load_prompt(out).hash == result["final"]["prompt_hash"]
    assert result["final"]["test"]["n_scored"] == result["split"]["test"]
    store = RunStore.open(os.environ["ASSAY_STORE"])
    test_ids = store.get_run(result["run_id"]).config.split_ids("test")
    marks = ",".join("?" * len(test_ids))
    first_test = store._db.execute(
        f"SELECT MIN(created_at) FROM results WHERE run_id = ? AND sample_id IN ({marks})",
        (result["run_id"], *test_ids),
    ).fetchone()[0]
    last_iteration = store._db.execute(
        "SELECT MAX(created_at) FROM iterations WHERE run_id = ?", (result["run_id"],)
    ).fetchone()[0]
    assert first_test > last_iteration  # no test row was sent before the loop had ended
