"""``assay optimize`` against a scripted task model and a scripted reasoning model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assay.data import demo_path, load_dataset
from assay.data.prompts import PromptTemplate, load_prompt
from assay.optimizer.config import SplitConfig
from assay.optimizer.guards import check_candidate
from assay.optimizer.split import Split, split_samples
from assay.records import Sample
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.optimize_helpers import (
    FLIP,
    MAGIC,
    OptimizeZoo,
    optimize_args,
    proposal,
    small_dataset,
)
from tests.run_helpers import assay, assay_process

PROMPT = str(demo_path("sentiment_prompt.md"))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."


def run_optimize(srv: ScriptedServer, data: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    proc = assay(*optimize_args(srv, data, *extra))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_good_rewrite_is_accepted_and_the_saved_prompt_is_the_scored_one(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 120)  # val 24 rows: enough to confirm the gain
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


@pytest.mark.parametrize(  # kill_after: iterations in the store at the kill
    ("strategy", "kill_after"), [("iterative", 1), ("iterative", 3), ("screen", 1), ("screen", 2)]
)
def test_kill_and_resume_repeats_no_call_and_ends_like_an_uninterrupted_run(
    tmp_path: Path, strategy: str, kill_after: int
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    plan = [
        proposal(f"{GOOD} Variant {i}.") if i % 2 else proposal(f"A {i} long story.")
        for i in range(8)
    ]
    extra = ["--max-iterations", "4", "--patience", "10", "--concurrency", "4"]
    extra += ["--strategy", strategy]
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
            if runs and len(store.iterations(runs[0].id)) >= kill_after:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        run_id = store.list_runs()[0].id
        assert kill_after <= len(store.iterations(run_id)) < 5
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
    assert {r["strategy"] for r in result["trajectory"]} == {"baseline", strategy}
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


# --- the leak guard on templated data -----------------------------------------------------------

SHARED_TASKS = Path(__file__).resolve().parents[2] / "shared" / "tasks"
DATE_TEMPLATE = (
    "Today is {today}. What is the date one week from today in MM/DD/YYYY? "
    "Options: (A) {a} (B) {b} (C) {c}"
)


def date_rows(n: int) -> list[dict[str, str]]:
    """Multiple-choice rows that share their question and options text, one date each."""
    rows = []
    for i in range(n):
        month, day, year = 1 + i % 12, 1 + (i * 7) % 20, 2000 + i
        dates = [f"{month:02d}/{day + k:02d}/{year}" for k in (7, 8, 6)]
        order = [dates[(i + k) % 3] for k in range(3)]  # the right one moves between options
        letter = "ABC"[order.index(dates[0])]
        today = f"{month:02d}/{day:02d}/{year}"
        text = DATE_TEMPLATE.format(today=today, a=order[0], b=order[1], c=order[2])
        rows.append({"id": f"d{i}", "input": text, "target": f"({letter})", "date": dates[0]})
    return rows


def templated_split(tmp_path: Path, reference: str = "target") -> Split:
    path = tmp_path / "dates.jsonl"
    rows = [{"id": r["id"], "input": r["input"], "ideal": r[reference]} for r in date_rows(60)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return split_samples(load_dataset(path).samples, SplitConfig())


def with_demos(prompt: str, demos: list[Sample]) -> PromptTemplate:
    shown = "\n\n".join(f"Input: {s.input_text()}\nAnswer: {s.reference}" for s in demos)
    return PromptTemplate.from_text(f"{prompt}\n\n## Examples\n\n{shown}")


def guard(candidate: PromptTemplate, parent: PromptTemplate, split: Split) -> str | None:
    refs = [s.reference for s in split.train if s.reference]
    held_out = [*split.val, *split.test]
    return check_candidate(candidate, parent, held_out, refs, train=split.train)


def test_train_demonstrations_of_a_templated_dataset_are_not_leaks(tmp_path: Path) -> None:
    split = templated_split(tmp_path)
    parent = PromptTemplate.from_text("Answer with the letter of the right option.")
    candidate = with_demos(parent.text, split.train[:4])
    assert guard(candidate, parent, split) is None
    # Every held-out row shares "what is the date one week from today in mm dd yyyy": without
    # the train rows to tell template from row, the guard would call that a leak.
    held_out = [*split.val, *split.test]
    assert "a leak" in (check_candidate(candidate, parent, held_out, []) or "")


def test_a_candidate_copying_a_held_out_rows_own_text_is_rejected_with_the_span(
    tmp_path: Path,
) -> None:
    split = templated_split(tmp_path)
    parent = PromptTemplate.from_text("Answer with the letter of the right option.")
    row = split.val[3]
    candidate = with_demos(parent.text, [*split.train[:2], row])
    reason = guard(candidate, parent, split)
    assert reason is not None and f"held-out sample {row.id} (a leak)" in reason
    span = reason.split("(a leak): ", 1)[1].strip("'\"")
    assert len(span.split()) >= 8 and span in row.input_text()
    assert re.search(r"\d\d/\d\d/\d{4}", span)  # the row's own dates, not only template text
    assert not any(span in s.input_text() for s in split.train)


def test_a_candidate_holding_a_held_out_reference_is_rejected_with_it(tmp_path: Path) -> None:
    split = templated_split(tmp_path, reference="date")  # free-text answers: the dates
    parent = PromptTemplate.from_text("Give the date in MM/DD/YYYY.")
    row = split.test[0]
    assert row.reference is not None
    candidate = PromptTemplate.from_text(f"{parent.text} It is often {row.reference}.")
    reason = guard(candidate, parent, split)
    assert reason == (
        f"contains the reference answer of held-out sample {row.id} (a leak): {row.reference!r}"
    )
    assert guard(with_demos(parent.text, split.train[:4]), parent, split) is None


@pytest.mark.parametrize("task", ["navigate", "hyperbaton", "implicatures"])
def test_the_leak_guard_on_the_shared_templated_tasks(task: str) -> None:
    data = SHARED_TASKS / f"{task}.jsonl"
    if not data.exists():
        pytest.skip(f"{data} is not here")
    split = split_samples(load_dataset(data).samples, SplitConfig())
    parent = load_prompt(SHARED_TASKS / f"{task}_prompt.md")
    for start in range(0, 40, 4):  # any four train rows make an admissible demonstration set
        assert guard(with_demos(parent.text, split.train[start : start + 4]), parent, split) is None
    rejected = [
        (row, reason)
        for row in [*split.val, *split.test][:30]
        if (reason := guard(with_demos(parent.text, [row]), parent, split)) is not None
    ]
    assert rejected  # rows with text of their own exist, and copying one is caught
    for row, reason in rejected:
        span = reason.split("(a leak): ", 1)[1][1:-1]
        assert f"held-out sample {row.id}" in reason
        assert span.rstrip("…") in " ".join(row.input_text().split())


class DateModel:
    """Right when the prompt shows worked examples, else always "(A)"."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.truth = {r["input"]: r["target"] for r in rows}

    def __call__(self, request: ChatRequest) -> Action:
        text = "\n".join(str(m.get("content")) for m in request.messages).rstrip()
        asked = next((t for row, t in self.truth.items() if text.endswith(row)), "(A)")
        return reply(asked if "## Examples" in text else "(A)")


def test_fewshot_on_a_templated_dataset_is_not_stopped_by_the_leak_guard(tmp_path: Path) -> None:
    rows = date_rows(60)
    data = tmp_path / "dates.jsonl"
    data.write_text(
        "".join(json.dumps({"input": r["input"], "ideal": r["target"]}) + "\n" for r in rows)
    )
    prompt = tmp_path / "prompt.md"
    prompt.write_text("Answer with the letter of the right option.\n\n{{input}}\n")
    with ScriptedServer(DateModel(rows)) as srv:
        proc = assay(
            "optimize", str(data), str(prompt), "-m", "compat/task", "--base-url", srv.base_url,
            "--metric", "label", "--strategy", "fewshot", "--max-iterations", "2",
            "--batch-size", "8", "--json",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    steps = result["trajectory"][1:]
    assert steps and not any("leak" in r["reason"] for r in steps)
    accepted = [r for r in steps if r["status"] == "accepted"]
    assert accepted and accepted[0]["demo_ids"], steps  # train demonstrations, kept on val
    assert result["final"]["test"]["mean"] > result["baseline"]["test"]["mean"]


# --- reports that say what generalised ----------------------------------------------------------


class ModestZoo(OptimizeZoo):
    """MAGIC helps a little (70% right against 45%): val can confirm it, a small test may not."""

    def _answer(self, system: str, text: str) -> Action:
        accuracy = 70 if MAGIC.lower() in system.lower() else 45
        right = hashlib.sha256(f"{system}|{text}".encode()).digest()[0] % 100 < accuracy
        truth = self.truth.get(text, "positive")
        return reply(truth if right else FLIP[truth], input_tokens=30, output_tokens=1)


def test_a_val_gain_that_does_not_hold_on_test_is_said_first_everywhere(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 120)
    store, out = tmp_path / "store", tmp_path / "result.json"
    with ScriptedServer(ModestZoo([proposal(GOOD)])) as srv:
        args = optimize_args(srv, data, "--max-iterations", "1", "--split", "0.2,0.7,0.1")
        args = [a for a in args if a != "--json"]  # the terminal summary
        proc = assay(*args, "--seed", "2", "--store", str(store), "--results-json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    base, final, gain = result["baseline"], result["final"], result["gain"]
    assert result["accepted"] == 1 and not gain["significant"]  # kept on val, not shown on test
    val_gain = final["val"]["mean"] - base["val"]["mean"]
    assert result["val_gain"] == pytest.approx(val_gain) and val_gain > 0.1
    assert result["val_test_gap"] == pytest.approx(final["val"]["mean"] - final["test"]["mean"])
    headline = result["headline"]
    assert headline.startswith("Not a significant gain on test: ")
    assert f"val had shown {val_gain:+.3f}" in headline
    shown = assay("show", result["run_id"], "--store", str(store))
    for printed in (proc.stdout, shown.stdout):
        assert printed.splitlines()[0] == headline
        for label, scores in (("starting prompt", base), ("best prompt", final)):
            val, test = scores["val"]["mean"], scores["test"]["mean"]
            gap = re.escape(f"{val - test:+.3f}")
            assert re.search(rf"{label} +{val:.3f} +{test:.3f} \(n=\d+\) +{gap}", printed)
        gains = " +".join(re.escape(f"{g:+.3f}") for g in (val_gain, gain["diff"]))
        assert re.search(rf"gain +{gains} .* not significant", printed), printed
    html = tmp_path / "report.html"
    report = assay("report", result["run_id"], "--store", str(store), "-o", str(html))
    assert report.returncode == 0, report.stderr
    page = html.read_text(encoding="utf-8")
    lead = page.split('data-part="gain"', 1)[1].split("</p>", 1)[0]
    assert lead.split(">", 1)[1].startswith("Not a significant gain on test.")
    gap = page.split('data-split="gap"', 1)[1].split("</tr>", 1)[0]
    assert f"{result['val_test_gap']:+.3f}" in gap
