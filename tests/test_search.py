"""Search that spends calls where they pay: screening, bootstrapped demonstrations, format
repair and caching, through the default strategy (``auto``, whose first phase is ``screen``).

The task model is scripted (``assay.testing.scripted_server``); every request it got is in the
server's log, so each test checks what was actually sent, not what the records claim.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from assay.data import demo_path, load_dataset
from assay.data.prompts import PromptTemplate
from assay.engine.engine import Budget, EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.jobs import Session
from assay.optimizer import loop
from assay.optimizer.config import OptimizeConfig, StopRules
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.records import OptimizeResult
from assay.optimizer.strategies.fewshot import EXAMPLES_HEADER
from assay.optimizer.strategies.formats import format_variants, label_set, unreadable
from assay.optimizer.strategies.screen import halves
from assay.records import Message, Request, Sample
from assay.scoring.score import Score
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.conftest import compat_model
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import assay

FLIP = {"positive": "negative", "negative": "positive"}
VAGUE = "What do you think of this movie review?"
DEMO_PROMPT = str(demo_path("sentiment_prompt.md"))
REQUEST = Request(messages=(Message(role="user", content="x"),))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."


def truth() -> dict[str, str]:
    return {
        s.input_text(): s.reference or ""
        for s in load_dataset(demo_path("sentiment.jsonl")).samples
    }


def right(system: str, text: str, accuracy: int) -> bool:
    return hashlib.sha256(f"{system}|{text}".encode()).digest()[0] % 100 < accuracy


def shown_inputs(system: str) -> list[str]:
    """The inputs a prompt's Examples section shows (capped ones end in an ellipsis)."""
    if EXAMPLES_HEADER not in system:
        return []
    return [s.rstrip("…") for s in re.findall(r"^Input: (.*)$", system, re.MULTILINE)]


def system_of(request: ChatRequest) -> str:
    return next((m["content"] for m in request.messages if m["role"] == "system"), "")


def task_requests(srv: ScriptedServer) -> list[ChatRequest]:
    return [r for r in srv.requests if r.body.get("model") == "task"]


def split_of(result: OptimizeResult, data: Path) -> dict[str, list[Sample]]:
    stored = RunStore.open(os.environ["ASSAY_STORE"]).get_run(result.run_id).config
    samples = {s.id: s for s in load_dataset(data).samples}
    return {part: [samples[i] for i in stored.split_ids(part)] for part in ("train", "val", "test")}


def config(srv: ScriptedServer, data: Path, prompt: str, **stop: Any) -> OptimizeConfig:
    """The defaults (strategy ``auto``, batch 16) with the scripted task and reasoner."""
    max_calls = stop.pop("max_calls", None)
    return OptimizeConfig(
        data=str(data),
        prompt=prompt,
        model=compat_model(srv, "task"),
        reasoning_model=compat_model(srv, "reasoner"),
        scoring=ScoringConfig(metrics=["label"]),
        stop=StopRules(**stop),
        engine=EngineConfig(budget=Budget(max_calls=max_calls)),
    )


async def run(cfg: OptimizeConfig, run_id: str | None = None) -> OptimizeResult:
    """In-process, with the response cache off: only the run's own store can spare a call."""
    session = Session.open(os.environ["ASSAY_STORE"], use_cache=False)
    prepared = loop.prepare(cfg)
    if run_id is None:
        return await loop.optimize(prepared, session, loop.start(prepared, session))
    loop.check_resumable(prepared, session.store.get_run(run_id))
    return await loop.optimize(prepared, session, run_id)


# --------------------------------------------------------------------------- pieces


def evaluation(
    values: Sequence[float | None], predicted: Sequence[str | None] | None = None
) -> Evaluation:
    results = {}
    for i, value in enumerate(values):
        said = (predicted or [None] * len(values))[i]
        score = (
            Score.unscored("no reference")
            if value is None
            else Score.scored(value, predicted=said, expected="x")
        )
        results[f"s{i}"] = ResultRecord(
            run_id="r", variant="v", sample_id=f"s{i}", request=REQUEST, scores={"label": score}
        )
    return Evaluation(PromptTemplate.from_text("p"), results, "label")


def test_each_half_of_the_batch_mixes_failed_and_passed_rows() -> None:
    batch = [Sample(id=f"s{i}", line=i, messages=()) for i in range(16)]
    for n_failed in (1, 4, 8, 15):
        parent = evaluation([0.0] * n_failed + [1.0] * (16 - n_failed))
        rungs = halves(parent, batch)
        assert len(rungs.first) == 8 and sorted(s.id for s in rungs.batch) == sorted(
            s.id for s in batch
        )
        failed_first = sum(parent.value(s.id) == 0.0 for s in rungs.first)
        assert 1 <= failed_first <= 7  # both kinds in the first half ...
        assert abs(failed_first - 8 * n_failed / 16) <= 1  # ... in proportion


def test_unreadable_answers_and_the_format_candidates() -> None:
    said = [None, "positive", None, "negative"]
    assert unreadable(evaluation([0.0, 1.0, 0.0, None], said)) == ["s0", "s2", "s3"]
    rows = [Sample(id=str(i), line=i, messages=(), reference=r) for i, r in enumerate("abab")]
    assert label_set(rows) == ["a", "b"]
    assert label_set(rows[:1]) == []  # one label is not a classification
    template = "Decide.\n\n{{input}}"
    variants = format_variants(template, ["False", "True"])
    for text in variants.values():
        assert PromptTemplate.from_text(text).slots == ["input"]
        assert "False or True" in text
    assert variants["format_cue"].endswith("Answer (False or True):")
    assert variants["format_first"].index("False or True") < variants["format_first"].index(
        "{{input}}"
    )
    assert set(format_variants("Classify.", ["a", "b"])) == {"format_rule", "format_strict"}
    assert format_variants("Classify.", []) == {}


# --------------------------------------------------------------------------- format repair


class FormatZoo:
    """Answers with a label only when its prompt demands a format ("answer with" and both
    labels), then ~85% right; otherwise it chats without naming a label."""

    def __init__(self) -> None:
        self.truth = truth()

    def __call__(self, request: ChatRequest) -> Action:
        if request.body.get("model") == "reasoner":
            return reply("I would rather not rewrite anything.")
        system, text = system_of(request), request.last_user_text
        lowered = system.lower()
        demanded = "answer with" in lowered and "positive" in lowered and "negative" in lowered
        if not demanded:
            return reply("I think it is a film with some scenes in it.")
        label = self.truth.get(text, "positive")
        return reply(label if right(system, text, 85) else FLIP[label])


def test_the_default_run_repairs_the_answer_format_within_the_budget(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    prompt = tmp_path / "vague.md"
    prompt.write_text(VAGUE)
    with ScriptedServer(FormatZoo()) as srv:
        proc = assay(
            "optimize", str(data), str(prompt), "-m", "compat/task", "--base-url", srv.base_url,
            "--reasoning-model", "compat/reasoner", "--reasoning-base-url", srv.base_url,
            "--metric", "label", "--max-calls", "400", "--json",
        )  # fmt: skip
        served = srv.count
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["strategy"] == "auto" and served <= 400
    first = result["trajectory"][1]
    assert first["strategy"] == "screen" and first["status"] == "accepted", first["reason"]
    assert first["diagnosis"].startswith("100% of the best prompt's answers")
    assert first["explanation"].startswith("format candidate")
    best = result["best_prompt"].lower()
    assert best.startswith(VAGUE.lower()) and "answer with one word: negative or positive" in best
    assert result["baseline"]["test"]["mean"] == 0.0 and result["final"]["test"]["mean"] > 0.6
    assert result["gain"]["p_value"] < 0.05


# --------------------------------------------------------------------------- bootstrapped demos


class VerdictZoo:
    """Writes "Verdict: <label>", ~50% right; ~90% right when its prompt shows demonstrations
    in that same format (which only its own outputs have), so bootstrapped sets win."""

    def __init__(self) -> None:
        self.truth = truth()
        self.said: dict[tuple[str, str], str] = {}

    def __call__(self, request: ChatRequest) -> Action:
        if request.body.get("model") == "reasoner":
            return reply("no rewrite")
        system, text = system_of(request), request.last_user_text
        accuracy = 90 if "Answer: Verdict:" in system else 50
        label = self.truth.get(text, "positive")
        answer = f"Verdict: {label if right(system, text, accuracy) else FLIP[label]}"
        self.said[(system, text)] = answer
        return reply(answer)


async def test_bootstrapped_demos_are_the_models_own_train_answers_never_scored_on(
    tmp_path: Path,
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    zoo = VerdictZoo()
    with ScriptedServer(zoo) as srv:
        result = await run(config(srv, data, DEMO_PROMPT, max_iterations=2))
        sent = task_requests(srv)
    parts = split_of(result, data)
    train = {s.id for s in parts["train"]}
    held_out = {s.id for s in [*parts["val"], *parts["test"]]}
    by_id = {s.id: s for s in load_dataset(data).samples}
    accepted = [r for r in result.trajectory if r.status == "accepted"]
    assert accepted and accepted[0].strategy == "screen" and accepted[0].demo_ids
    baseline = result.trajectory[0].prompt
    for r in result.trajectory[1:]:
        assert set(r.demo_ids) <= train and not set(r.demo_ids) & held_out
    for demo_id in accepted[0].demo_ids:
        own = zoo.said[(baseline, by_id[demo_id].input_text())]  # what the model wrote ...
        assert f"Answer: {own}" in accepted[0].prompt  # ... is what the demonstration shows
        assert own.endswith(by_id[demo_id].reference or "?")  # and it was right
    # No prompt, candidate or not, was ever sent a row it shows as a demonstration.
    for request in sent:
        flat = " ".join(request.last_user_text.split())
        assert not any(flat.startswith(shown) for shown in shown_inputs(system_of(request)))
    assert any(shown_inputs(system_of(r)) for r in sent)  # demonstrations were screened


# --------------------------------------------------------------------------- test and val


async def test_screening_keeps_candidates_off_val_and_test(tmp_path: Path) -> None:
    """Many prompts see train; val sees only the finalists; test is scored once, at the end,
    for the baseline and the best prompt."""
    data = small_dataset(tmp_path / "d.jsonl", 80)
    zoo = OptimizeZoo([proposal(GOOD)])
    with ScriptedServer(zoo) as srv:
        result = await run(config(srv, data, DEMO_PROMPT, max_iterations=3))
        sent = task_requests(srv)
    parts = split_of(result, data)
    part_of = {s.input_text(): name for name, rows in parts.items() for s in rows}
    prompts: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for request in sent:
        prompts[part_of[request.last_user_text]].add(system_of(request))
    finalists = {r.prompt for r in result.trajectory if r.val_candidate is not None}
    assert prompts["val"] <= finalists  # only a promoted candidate reaches val
    assert len(prompts["train"]) > 3 * len(prompts["val"])  # screening is wide, val narrow
    assert prompts["test"] == {result.trajectory[0].prompt, result.best_prompt}
    assert MAGIC in result.best_prompt
    on_test = [i for i, r in enumerate(sent) if part_of[r.last_user_text] == "test"]
    assert on_test and min(on_test) > max(
        i for i, r in enumerate(sent) if part_of[r.last_user_text] != "test"
    )


# --------------------------------------------------------------------------- caching


async def test_no_prompt_and_row_pair_is_paid_twice_in_a_run_or_across_a_resume(
    tmp_path: Path,
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    plan: Callable[[int], str] = lambda i: proposal(f"{GOOD} Variant {i}.")  # noqa: E731
    with ScriptedServer(OptimizeZoo(plan)) as srv:
        prompt = str(demo_path("sentiment_prompt.md"))
        first = await run(config(srv, data, prompt, max_iterations=2, patience=9))
        resumed = await run(config(srv, data, prompt, max_iterations=4, patience=9), first.run_id)
        pairs = Counter(json.dumps(r.messages, sort_keys=True) for r in task_requests(srv))
    assert resumed.iterations == 4 and first.iterations == 2
    assert pairs and max(pairs.values()) == 1, [p for p, n in pairs.items() if n > 1][:1]
    assert resumed.spend.calls == srv.count  # every call the server got is in the spend


@pytest.mark.parametrize("strategy", ["screen"])
def test_screen_is_on_the_command_line(tmp_path: Path, strategy: str) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    with ScriptedServer(OptimizeZoo(["no prompt block"])) as srv:
        proc = assay(
            "optimize", str(data), str(demo_path("sentiment_prompt.md")), "-m", "compat/task",
            "--base-url", srv.base_url, "--metric", "label", "--strategy", strategy,
            "--max-iterations", "1", "--batch-size", "8", "--json",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    step = json.loads(proc.stdout)["trajectory"][1]
    assert step["strategy"] == "screen" and len(step["candidate_scores"]) >= 4
    assert step["strategy_state"]["rows"] == [4, 4]
