"""Results are written in group commits, and nothing a run promised is lost by it.

``ResultWriter`` puts every result that completes in one turn of the event loop into one
transaction; the worker waits for that commit before it takes its next item. Checked here: a
result is on disk (seen by another connection) when ``save`` returns, results that complete
together share a commit, a failed commit reaches every worker waiting on it and fails the run
(resumable), and a ``kill -9`` at concurrency 16 re-sends only calls that were in flight. Also:
the collector thresholds a run sets are put back, and the throttled progress display still
ends on every result and every error.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from assay.benchmark.config import RunConfig
from assay.data import demo_path
from assay.engine.engine import EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.evaluation.execute import RUN_GC_THRESHOLDS, fewer_gc_passes
from assay.evaluation.writer import ResultWriter
from assay.jobs import BenchmarkJob, Session
from assay.jobs.lifecycle import StoreFull
from assay.pricing import load_price_table
from assay.providers.specs import resolve_model
from assay.records import Completion, Message, Request, Spent
from assay.scoring.score import Score
from assay.store.run_record import StoredRun
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, by_content, error, reply
from tests.run_helpers import assay
from tests.test_crash_resume import Killer, only_run, start_and_kill

SENTIMENT = str(demo_path("sentiment.jsonl"))
PROMPT = str(demo_path("sentiment_prompt.md"))


def new_run(store: RunStore) -> str:
    record = StoredRun(
        kind="run", data="d.jsonl", dataset_sha256="0", n_samples=1, primary_metric="label",
        models=["m"], variants=[], job={},
    )  # fmt: skip
    return store.create_run(record)


def result(run_id: str, i: int) -> ResultRecord:
    return ResultRecord(
        run_id=run_id,
        variant="m",
        sample_id=str(i),
        request=Request(messages=(Message(role="user", content=f"row {i}"),)),
        completion=Completion(text="positive", input_tokens=3, output_tokens=1),
        scores={"label": Score(value=1.0, status="scored")},
    )


def test_results_that_complete_together_share_a_commit_and_are_on_disk_on_return(
    tmp_path: Path,
) -> None:
    store = RunStore.open(tmp_path)
    run_id = new_run(store)
    spent = Spent(calls=20, cost_usd=0.5)
    writer = ResultWriter(store, lambda: spent)
    reader = RunStore.open(tmp_path, create=False)  # another connection: sees commits only

    async def save_together() -> None:
        await asyncio.gather(*(writer.save(result(run_id, i)) for i in range(20)))

    async def save_one_by_one() -> list[int]:
        seen = []
        for i in range(20, 23):
            await writer.save(result(run_id, i))
            seen.append(len(reader.completed_keys(run_id)))
        return seen

    asyncio.run(save_together())
    assert (writer.commits, writer.saved) == (1, 20)
    assert len(reader.completed_keys(run_id)) == 20
    assert reader.spent(run_id) == spent
    assert asyncio.run(save_one_by_one()) == [21, 22, 23]  # each on disk when save returns
    assert (writer.commits, writer.saved) == (4, 23)
    assert {r.scores["label"].value for r in reader.results(run_id)} == {1.0}


def test_a_secret_echoed_in_results_is_redacted_in_a_group_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-group-commit-0123456789abcdef"
    monkeypatch.setenv("GROUP_COMMIT_API_KEY", key)
    store = RunStore.open(tmp_path)
    run_id = new_run(store)
    echoed = [
        result(run_id, 0).model_copy(update={"completion": Completion(text=f"key {key}")}),
        result(run_id, 1).model_copy(update={"error": f"401 for {key[3:]}", "completion": None}),
        result(run_id, 2).model_copy(
            update={"scores": {"label": Score(value=0.0, status="scored", reason=key[:-4])}}
        ),
    ]
    writer = ResultWriter(store, Spent)

    async def save_together() -> None:
        await asyncio.gather(*(writer.save(r) for r in echoed))

    asyncio.run(save_together())
    store.close()
    assert writer.commits == 1
    stored = (tmp_path / "runs.sqlite").read_bytes()
    wal = tmp_path / "runs.sqlite-wal"
    stored += wal.read_bytes() if wal.exists() else b""
    assert b"0123456789abcdef" not in stored and b"***" in stored


class FullDisk(RunStore):
    """A store whose disk fills up after ``room`` result commits."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path)
        self.room = room

    def save_results(self, results: Sequence[ResultRecord], spent: Spent | None = None) -> None:
        if self.room <= 0:
            raise sqlite3.OperationalError("database or disk is full")
        self.room -= 1
        super().save_results(results, spent)


def test_a_failed_commit_reaches_every_waiting_worker(tmp_path: Path) -> None:
    store = FullDisk(tmp_path / "runs.sqlite", room=0)
    writer = ResultWriter(store, Spent)

    async def save_together() -> list[BaseException | None]:
        saves = (writer.save(result(new_run(store), i)) for i in range(5))
        return await asyncio.gather(*saves, return_exceptions=True)

    outcomes = asyncio.run(save_together())
    assert len(outcomes) == 5
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes)
    assert writer.saved == 0


def test_a_full_disk_mid_run_fails_the_run_and_keeps_what_was_committed(tmp_path: Path) -> None:
    store = FullDisk(tmp_path / "runs.sqlite", room=3)
    session = Session(store, load_price_table(None))
    with ScriptedServer(by_content(lambda _: reply("positive", delay=0.01))) as srv:
        config = RunConfig(
            data=SENTIMENT,
            prompts=[PROMPT],
            models=[resolve_model("compat/m", base_url=srv.base_url)],
            scoring=ScoringConfig(metrics=["label"]),
            engine=EngineConfig(concurrency=8, use_cache=False),
            limit=60,
        )
        job = BenchmarkJob.prepare(session, config)
        with pytest.raises(StoreFull):
            job.execute()
    assert store.get_run(job.run_id).status == "failed"
    kept = store.completed_keys(job.run_id)
    assert 3 <= len(kept) <= 3 * 8  # three commits made it, each of one to eight results
    assert store.integrity_problems() == []


def test_a_kill_at_concurrency_16_resends_only_calls_in_flight(tmp_path: Path) -> None:
    arrivals: Counter[str] = Counter()

    def answer(request: ChatRequest) -> Action:
        arrivals[request.last_user_text] += 1
        return reply("positive", delay=0.02)

    killer = Killer(answer)
    args = [
        "run", SENTIMENT, PROMPT, "-m", "compat/m", "--metric", "label", "--limit", "150",
        "--concurrency", "16", "--no-cache", "--json",
    ]  # fmt: skip
    with ScriptedServer(killer) as srv:
        at = random.Random(16).randint(60, 120)
        start_and_kill(killer, [*args, "--base-url", srv.base_url], at)
        store = RunStore.open(os.environ["ASSAY_STORE"])
        run_id = only_run(store)
        saved = {r.request.messages[-1].content for r in store.results(run_id)}
        assert 0 < len(saved) < at  # saved only after their calls; some were in flight
        resumed = assay("run", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert all(arrivals[text] == 1 for text in saved)  # a saved result is never re-sent
    resent = [text for text, n in arrivals.items() if n > 1]
    assert len(resent) <= 16 and max(arrivals.values()) <= 2
    assert len(arrivals) == 150 and len(store.results(run_id)) == 150
    assert json.loads(resumed.stdout)["status"] == "complete"
    assert store.integrity_problems() == []


def test_the_collector_thresholds_a_run_sets_are_put_back() -> None:
    before = gc.get_threshold()
    with fewer_gc_passes():
        assert gc.get_threshold() == RUN_GC_THRESHOLDS
        with fewer_gc_passes():  # a nested run (an adaptive round) leaves them as they were
            pass
        assert gc.get_threshold() == RUN_GC_THRESHOLDS
    assert gc.get_threshold() == before
    # Two runs interleaved (threads): whichever ends last, the defaults come back.
    first, second = fewer_gc_passes(), fewer_gc_passes()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_the_throttled_progress_display_ends_on_every_result_and_error(tmp_path: Path) -> None:
    bad = {"Veers uncomfortably close to pro Serb propaganda."}

    def answer(text: str) -> Action:
        return error(400, "refused") if text in bad else reply("positive")

    with ScriptedServer(by_content(answer)) as srv:
        proc = assay(
            "run", SENTIMENT, PROMPT, "-m", "compat/m", "--base-url", srv.base_url,
            "--metric", "label", "--limit", "120", "--concurrency", "8", "--no-cache",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    progress = [line for line in proc.stderr.splitlines() if "120/120" in line]
    assert len(progress) == 1 and " 1 err " in progress[0], proc.stderr
