"""The search strategies: selection logic with scripted task, reasoning and judge models.

Most tests drive the loop in-process (``loop.prepare`` -> ``start`` -> ``optimize``) against a
scripted server: the task model is right far more often when its prompt holds MAGIC, the
reasoner replies from a plan, and the judge prefers responses that say GOOD. The tests marked
``model`` run each strategy end to end on the embedded SmolLM2 model.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assay.data import demo_path, load_dataset
from assay.data.prompts import SLOT, PromptTemplate, load_prompt
from assay.engine.engine import Budget, EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.jobs import Session
from assay.optimizer import loop
from assay.optimizer.config import OptimizeConfig, StopRules
from assay.optimizer.context import LoopState
from assay.optimizer.estimate import estimate
from assay.optimizer.records import IterationRecord, OptimizeResult
from assay.optimizer.split import Split
from assay.optimizer.strategies.auto import (
    Phase,
    fallback,
    parse_choice,
    phase_over,
    phase_share,
    phases,
)
from assay.optimizer.strategies.duel import DuelPool, choose_pair
from assay.optimizer.strategies.fewshot import (
    EXAMPLES_HEADER,
    batch_and_pool,
    candidate_sets,
    split_examples,
    with_examples,
)
from assay.optimizer.strategies.pareto import ParetoStrategy, pick_parent, survivors
from assay.optimizer.strategies.structural import ANCHOR, layout_variants
from assay.pricing import PriceTable
from assay.records import Sample
from assay.scoring.judge import JudgeConfig
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.conftest import compat_model
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import assay, assay_process

PROMPT = str(demo_path("sentiment_prompt.md"))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
WORSE = "Reply with a long story about the review."
TEMPLATE = (
    "You are a film critic. Never guess.\n"
    "Review: {{text}}\n"
    "Rated {{rating}} by people.\n"
    "Is the review positive or negative? Answer with one word."
)


# --------------------------------------------------------------------------- harness


class JudgeZoo(OptimizeZoo):
    """OptimizeZoo plus a judge. The task says "GOOD answer" with MAGIC in its prompt, else
    "meh"; the judge scores GOOD 5 and anything else 2, and in duels prefers GOOD. A ``biased``
    judge always names whichever response it was shown first."""

    def __init__(self, plan: list[str] | Callable[[int], str], biased: bool = False) -> None:
        super().__init__(plan)
        self.biased = biased
        self.pairwise: list[str] = []

    def __call__(self, request: ChatRequest) -> Action:
        if request.model != "judge":
            return super().__call__(request)
        text = request.last_user_text
        if "<response_a>" not in text:
            return reply("Judged.\nVERDICT: " + ("5" if "GOOD" in _tag(text, "response") else "2"))
        self.pairwise.append(text)
        a, b = "GOOD" in _tag(text, "response_a"), "GOOD" in _tag(text, "response_b")
        winner = "A" if self.biased or (a and not b) else "B" if b and not a else "TIE"
        return reply(f"One reads better.\nWINNER: {winner}")

    def _answer(self, system: str, text: str) -> Action:
        return reply("GOOD answer" if MAGIC.lower() in system.lower() else "meh answer")


def _tag(text: str, tag: str) -> str:
    found = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
    return found.group(1) if found else ""


def unlabelled_dataset(path: Path, n: int = 40) -> Path:
    rows = [json.loads(line) for line in demo_path("sentiment.jsonl").read_text().splitlines()]
    path.write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows[:n])
    )
    return path


def services() -> Session:
    return Session.open(os.environ["ASSAY_STORE"])


async def optimize(
    srv: ScriptedServer, data: Path, strategy: str, **options: Any
) -> OptimizeResult:
    """``strategy_config``'s options, run in-process."""
    prepared = loop.prepare(strategy_config(srv, data, strategy, **options))
    svc = services()
    return await loop.optimize(prepared, svc, loop.start(prepared, svc))


def strategy_config(
    srv: ScriptedServer,
    data: Path,
    strategy: str,
    *,
    prompt: str = PROMPT,
    judge: bool = False,
    max_calls: int | None = None,
    **stop: Any,
) -> OptimizeConfig:
    scoring = ScoringConfig(
        metrics=[] if judge else ["label"],
        judge=JudgeConfig(models=[compat_model(srv, "judge")], rubric="Good answers say GOOD.")
        if judge
        else None,
    )
    return OptimizeConfig(
        data=str(data),
        prompt=prompt,
        model=compat_model(srv, "task"),
        reasoning_model=compat_model(srv, "reasoner"),
        scoring=scoring,
        strategy=strategy,
        batch_size=8,
        stop=StopRules(**stop),
        engine=EngineConfig(budget=Budget(max_calls=max_calls)),
    )


def split_of(result: OptimizeResult, data: Path) -> dict[str, list[Sample]]:
    stored = RunStore.open(os.environ["ASSAY_STORE"]).get_run(result.run_id).config
    samples = {s.id: s for s in load_dataset(data).samples}
    return {part: [samples[i] for i in stored.split_ids(part)] for part in ("train", "val", "test")}


def sample(i: int, text: str, label: str | None = "positive") -> Sample:
    return Sample(
        id=f"s{i}", line=i, messages=({"role": "user", "content": text},), reference=label
    )


# --------------------------------------------------------------------------- structural


def test_every_layout_keeps_the_slot_lines_whole_and_reads_back_cleanly() -> None:
    text = with_examples(TEMPLATE, [sample(1, "A fine film.")])
    variants = layout_variants(text)
    assert {"sections", "xml", "role_task_format", "constraints_first", "input_anchored"} <= set(
        variants
    )
    slot_lines = [line for line in TEMPLATE.splitlines() if SLOT.search(line)]
    for name, variant in variants.items():
        assert PromptTemplate.from_text(variant).slots == ["text", "rating"], name
        assert all(line in variant.splitlines() for line in slot_lines), name
        assert variant.count(EXAMPLES_HEADER) == 1, name
        # A layout of a layout keeps one anchor, one Examples section and every slot.
        for again in layout_variants(variant).values():
            assert again.count(ANCHOR) <= 1 and again.count(EXAMPLES_HEADER) == 1
            assert PromptTemplate.from_text(again).slots == ["text", "rating"]
    assert variants["input_anchored"].endswith(ANCHOR + "\n" + "\n".join(slot_lines))
    assert variants["sections"].startswith("## Role\nYou are a film critic.")


async def test_structural_tries_layouts_on_one_batch_and_keeps_slots(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    template = tmp_path / "template.md"
    template.write_text(TEMPLATE)
    zoo = OptimizeZoo(["no prompt block here"])
    with ScriptedServer(zoo) as srv:
        result = await optimize(srv, data, "structural", prompt=str(template), max_iterations=2)
    steps = result.trajectory[1:]
    assert [r.strategy for r in steps] == ["structural", "structural"]
    assert len(steps[0].candidate_scores) >= 4  # several layouts on the same batch
    for r in steps:
        assert PromptTemplate.from_text(r.prompt).slots == ["text", "rating"]
        assert "slot" not in r.reason
    # Every task request had its slots filled: no literal {{...}} reached the model.
    assert all("{{" not in text for model, _, text in zoo.log if model == "task")


async def test_structural_fits_its_layouts_into_the_call_budget(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)  # train 40, val 16, test 24
    zoo = OptimizeZoo(["no prompt block here"])
    with ScriptedServer(zoo) as srv:
        result = await optimize(
            srv, data, "structural", max_calls=120, max_iterations=5, patience=5
        )
        served = srv.count
    assert 1 <= len(result.trajectory[1].candidate_scores) < 6  # six layouts would not fit
    assert "budget" in (result.stopped_reason or "")
    assert served <= 120 and result.final.test.n_scored == 24


# --------------------------------------------------------------------------- fewshot


def test_candidate_sets_aim_at_the_failures() -> None:
    pool = [sample(i, f"plain words number {i}", "positive") for i in range(10)]
    pool += [sample(10 + i, f"gloomy dull mess {i}", "negative") for i in range(4)]
    pool.append(sample(99, "the acting was wooden and the plot was a dull mess", "negative"))
    failures = [sample(50, "wooden acting, dull plot, a mess", "negative")]
    sets = candidate_sets(failures, pool, random.Random(0), k=4)
    assert sets["similar"][0].id == "s99"  # the pool row most like the failing row
    labels = [s.reference for s in sets["labels"]]
    assert labels.count("negative") >= 2 and "positive" in labels  # the missed label, weighted
    assert all(len(demos) == 4 for demos in sets.values())
    assert len({frozenset(d.id for d in demos) for demos in sets.values()}) == len(sets)


def test_examples_section_is_replaced_not_stacked_and_sits_before_the_input() -> None:
    once = with_examples(TEMPLATE, [sample(1, "Great fun.")])
    twice = with_examples(once, [sample(2, "Dull.", "negative")])
    assert twice.count(EXAMPLES_HEADER) == 1 and "Great fun." not in twice
    assert twice.index(EXAMPLES_HEADER) < twice.index("{{text}}")
    assert split_examples(twice)[0] == split_examples(once)[0]
    system = with_examples(GOOD, [sample(1, "Great fun.")])
    assert system.startswith(GOOD) and system.endswith("Answer: positive")


def test_batch_and_pool_are_disjoint_train_rows() -> None:
    """The demonstration pool is fixed for the run; every batch comes from the other rows."""
    train = [sample(i, f"row {i}") for i in range(30)]
    ctx: Any = type("Ctx", (), {})()
    ctx.split = Split(train=train, val=[], test=[], stratified=False)
    ctx.config = OptimizeConfig(data="d", prompt="p", model=compat_model_stub(), batch_size=8)
    pools = set()
    for idx in range(0, 6):
        batch, pool = batch_and_pool(ctx, idx)
        assert len(batch) == 8 and len(pool) == 10  # a third of train
        assert not {s.id for s in batch} & {s.id for s in pool}
        assert {s.id for s in batch} | {s.id for s in pool} <= {s.id for s in train}
        pools.add(frozenset(s.id for s in pool))
    assert len(pools) == 1
    ctx.split = Split(train=train[:7], val=[], test=[], stratified=False)
    assert batch_and_pool(ctx, 1)[1] == []  # too few rows to spare any


def compat_model_stub() -> Any:
    from assay.providers.specs import resolve_model

    return resolve_model("compat/task", base_url="http://127.0.0.1:9/v1")


async def test_fewshot_never_scores_a_candidate_on_its_own_demonstrations(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    zoo = OptimizeZoo(["unused"])
    with ScriptedServer(zoo) as srv:
        result = await optimize(srv, data, "fewshot", max_iterations=3, patience=5)
    assert not any(model == "reasoner" for model, _, _ in zoo.log)  # works without a reasoner
    parts = split_of(result, data)
    train_ids = {s.id for s in parts["train"]}
    held_out = {s.id for s in [*parts["val"], *parts["test"]]}
    by_text = {s.input_text(): s.id for s in load_dataset(data).samples}
    steps = result.trajectory[1:]
    assert steps and all(r.demo_ids for r in steps)
    for r in steps:
        assert set(r.demo_ids) <= train_ids and not set(r.demo_ids) & held_out
        scored_on = {by_text[t] for m, system, t in zoo.log if m == "task" and system == r.prompt}
        assert scored_on and not scored_on & set(r.demo_ids)
    # Stronger: no candidate prompt at all was ever sent with one of its own demonstrations.
    for model, system, text in zoo.log:
        if model == "task" and EXAMPLES_HEADER in system:
            shown = re.findall(r"^Input: (.*)$", system, re.MULTILINE)
            flat = " ".join(text.split())
            assert not any(flat.startswith(s.rstrip("…")) for s in shown)


# --------------------------------------------------------------------------- duel


def test_double_thompson_sampling_pits_the_leader_against_its_likeliest_rival() -> None:
    pool = DuelPool(["a", "b", "c"])
    for n in range(20):
        pool.record(0, 1, "A")  # a always beats b
        pool.record(0, 2, "A" if n < 15 else "B")  # a beats c 15 times of 20
        pool.record(2, 1, "A")  # c always beats b
    rng = random.Random(7)
    pairs = [choose_pair(pool, rng) for _ in range(200)]
    assert all(i != j for i, j in pairs)
    assert sum(i == 0 for i, _ in pairs) > 180  # the Copeland winner is drawn first
    assert sum(j == 2 for i, j in pairs if i == 0) > sum(j == 1 for i, j in pairs if i == 0)
    assert pool.leader("b") == 0 and pool.win_rate(1) == 0.0
    tied = DuelPool(["x", "best"])
    tied.record(0, 1, "tie")
    assert tied.win_rate(0) == tied.win_rate(1) == 0.5
    assert tied.leader("best") == 1  # a tie leaves the incumbent in the lead


async def test_duel_order_flips_are_ties_and_the_best_keeps_the_lead(tmp_path: Path) -> None:
    data = unlabelled_dataset(tmp_path / "d.jsonl")
    zoo = JudgeZoo(["no prompt block here"], biased=True)  # always names the first shown
    with ScriptedServer(zoo) as srv:
        result = await optimize(srv, data, "duel", judge=True, max_iterations=2, patience=5)
    steps = result.trajectory[1:]
    assert all(r.duels > 0 and r.win_rate == 0.5 for r in steps)
    assert all(f"{r.duels} ties from order flips" in r.explanation for r in steps)
    assert all(r.status == "rejected" and "still leads" in r.reason for r in steps)
    assert all(r.val_candidate is None for r in steps)  # no challenger reached val
    # Each comparison is asked in both orders (identical responses share the cached verdict).
    assert zoo.pairwise and len(zoo.pairwise) % 2 == 0
    assert len(zoo.pairwise) <= 2 * sum(r.duels for r in steps)
    assert result.best_prompt == load_prompt(PROMPT).text


async def test_duel_finds_the_prompt_the_judge_prefers_and_scores_it_on_val(
    tmp_path: Path,
) -> None:
    data = unlabelled_dataset(tmp_path / "d.jsonl")
    zoo = JudgeZoo([proposal(GOOD)])
    with ScriptedServer(zoo) as srv:
        result = await optimize(srv, data, "duel", judge=True, max_iterations=4, patience=5)
    accepted = [r for r in result.trajectory if r.status == "accepted"]
    assert len(accepted) == 1 and accepted[0].prompt == GOOD == result.best_prompt
    winner = accepted[0]
    assert winner.win_rate is not None and winner.win_rate > 0.5
    assert winner.val_candidate == 1.0  # the judge's pointwise mean (GOOD scores 5 of 5)
    # One scale per number: val holds judge means only, never a win rate.
    assert {r.val_candidate for r in result.trajectory} <= {None, 0.25, 1.0}
    assert result.final.test.mean == 1.0 and result.baseline.test.mean == 0.25


def test_duel_without_a_judge_fails_before_any_call(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 30)
    with ScriptedServer(OptimizeZoo(["x"])) as srv:
        proc = assay(
            "optimize", str(data), PROMPT, "-m", "compat/task", "--base-url", srv.base_url,
            "--metric", "label", "--strategy", "duel",
        )  # fmt: skip
        assert proc.returncode != 0 and "needs a judge" in proc.stderr
        assert srv.count == 0


# --------------------------------------------------------------------------- pareto


def test_pareto_keeps_a_candidate_only_if_it_is_best_on_some_item() -> None:
    scores: dict[str, dict[str, float | None]] = {
        "a": {"1": 1.0, "2": 0.0, "3": 1.0, "4": 0.0},
        "b": {"1": 0.0, "2": 1.0, "3": 1.0, "4": 0.0},
        "c": {"1": 1.0, "2": 0.0, "3": 0.0, "4": 0.0},  # wins only where a wins too
        "d": {"1": 0.0, "2": 0.0, "3": 0.0, "4": None},  # wins nothing
    }
    assert survivors(scores) == {"a": 2, "b": 2}
    only_ties: dict[str, dict[str, float | None]] = {"x": {"1": 0.0}, "y": {"1": 0.0}}
    assert len(survivors(only_ties)) == 1  # nobody wins anything: keep one, not none
    rng = random.Random(3)
    picks = [pick_parent({"a": 3, "b": 1}, rng) for _ in range(400)]
    assert 250 < picks.count("a") < 350  # in proportion to the items won


def test_pareto_rebuilds_its_pool_from_the_records() -> None:
    def record(i: int, prompt: str, status: str, val: float | None) -> IterationRecord:
        p = PromptTemplate.from_text(prompt)
        return IterationRecord(
            idx=i, strategy="pareto", status=status, prompt=prompt, prompt_hash=p.hash,
            val_candidate=val,
        )  # fmt: skip

    records = [
        record(0, "base prompt", "baseline", 0.5),
        record(1, "child one", "rejected", 0.4),  # passed its batch: in the pool
        record(2, "child two", "rejected", None),  # failed its batch: not in the pool
        record(3, "child three", "accepted", 0.7),
    ]
    best = PromptTemplate.from_text("child three")
    state = LoopState(baseline=best, best=best, best_val=None, records=records)  # type: ignore[arg-type]
    pool = ParetoStrategy()._pool(state)
    assert sorted(p.text for p in pool.values()) == ["base prompt", "child one", "child three"]


async def test_pareto_parents_are_survivors_and_children_join_after_their_batch(
    tmp_path: Path,
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    zoo = OptimizeZoo(lambda i: proposal(f"Classify the sentiment, variant {i}. One word."))
    with ScriptedServer(zoo) as srv:
        result = await optimize(srv, data, "pareto", max_iterations=4, patience=10)
    steps = result.trajectory[1:]
    known = {result.trajectory[0].prompt_hash}
    for r in steps:
        front = r.strategy_state["front"]
        assert r.parent_hash is not None and r.parent_hash[:12] in front
        assert all(any(h.startswith(k) for h in known) for k in front)
        if r.val_candidate is not None:
            known.add(r.prompt_hash)
    assert any(r.val_candidate is not None for r in steps)


# --------------------------------------------------------------------------- auto


def test_auto_reads_the_last_strategy_line_and_falls_back_in_order() -> None:
    menu = ("structural", "fewshot", "iterative", "pareto")
    assert parse_choice("Think.\nSTRATEGY: fewshot", menu) == "fewshot"
    assert parse_choice("STRATEGY: fewshot\nNo wait.\nSTRATEGY: pareto", menu) == "pareto"
    assert parse_choice("STRATEGY: fewshot\nSTRATEGY: rm-rf", menu) is None  # last one counts
    assert parse_choice("<think>STRATEGY: pareto</think>\nhmm", menu) is None
    assert parse_choice("strategy: Iterative", menu) == "iterative"
    done = [Phase(1, "structural", 2, 2, 0)]
    assert fallback(menu, []) == "structural" and fallback(menu, done) == "fewshot"
    assert fallback(menu, [Phase(i, n, 1, 1, 0) for i, n in enumerate(menu)]) == "structural"
    assert [phase_share(n) for n in (1, 3, 5, 8, 12)] == [1, 1, 2, 2, 3]
    assert phase_over(Phase(1, "x", 1, 0, 1), 2) is False
    assert phase_over(Phase(1, "x", 2, 2, 0), 3) is True  # phase patience, not the share


def chooser_plan(
    zoo: OptimizeZoo, choices: list[str], proposals: list[str]
) -> Callable[[int], str]:
    """Strategy choices for the chooser's requests, proposals (then junk) for the rest."""
    counts = {"choice": 0, "proposal": 0}

    def plan(index: int) -> str:
        kind = "choice" if "## Strategies" in zoo.reasoner_requests[index] else "proposal"
        queue = choices if kind == "choice" else proposals
        n = counts[kind]
        counts[kind] += 1
        return queue[n] if n < len(queue) else "no usable reply"

    return plan


async def test_auto_starts_every_phase_from_the_best_on_val(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    zoo = OptimizeZoo(["unused"])
    choices = ["I pick STRATEGY: structural\nSTRATEGY: iterative"]
    choices.append("Layout next.\nSTRATEGY: structural")
    zoo.plan = chooser_plan(zoo, choices, [proposal(GOOD), proposal(WORSE)])
    with ScriptedServer(zoo) as srv:
        result = await optimize(srv, data, "auto", max_iterations=3, patience=5)
    one, two, three = result.trajectory[1:]
    assert (one.phase, two.phase, three.phase) == (1, 2, 3)
    assert [r.strategy for r in (one, two, three)] == ["screen", "iterative", "structural"]
    assert one.phase_reason.startswith("first on the menu (screen)")
    # Phase 1 screened the reasoner's rewrite (GOOD) with the rest and kept a MAGIC prompt.
    assert one.status == "accepted" and MAGIC in one.prompt
    assert two.status == "rejected" and two.prompt == WORSE and two.parent_hash == one.prompt_hash
    # The regressed phase-2 prompt is never carried over: phase 3 starts from phase 1's.
    assert (
        three.parent_hash == one.prompt_hash
        and three.phase_reason == "the reasoner chose structural"
    )
    choosers = [
        i for i, (m, _, t) in enumerate(zoo.log) if m == "reasoner" and "## Strategies" in t
    ]
    assert len(choosers) == 2  # phase 1 is not asked for
    assert f"<current_prompt>\n{one.prompt[:1500]}" in zoo.log[choosers[1]][2]
    after = zoo.log[choosers[1] :]
    assert not any("long story" in system for m, system, _ in after if m == "task")
    assert MAGIC in three.prompt and result.best_prompt in (one.prompt, three.prompt)


async def test_auto_phase_patience_ends_the_phase_not_the_run(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    poisoned = tmp_path / "poisoned.md"  # every variant of it keeps the task model wrong
    poisoned.write_text("Tell a long story about the review. Answer positive or negative.")
    zoo = OptimizeZoo(["unused"])
    worse = [proposal(f"{WORSE} Take {i}.") for i in range(10)]
    zoo.plan = chooser_plan(zoo, ["not a choice"] * 5, worse)
    with ScriptedServer(zoo) as srv:
        result = await optimize(
            srv, data, "auto", prompt=str(poisoned), max_iterations=16, patience=4
        )
    groups: dict[int | None, list[IterationRecord]] = {}
    for r in result.trajectory[1:]:
        groups.setdefault(r.phase, []).append(r)
    first, second = groups[1], groups[2]
    assert len(first) < phase_share(16) == 4  # the phase ended early ...
    assert [r.status for r in first[-2:]] == ["rejected", "rejected"]  # ... on its own patience
    # The first phase is the menu's first; then the fallback order is the registry's.
    assert (first[0].strategy, second[0].strategy) == ("screen", "iterative")
    assert "first on the menu" in first[0].phase_reason
    assert all("fallback order" in rs[0].phase_reason for n, rs in groups.items() if n != 1)
    assert all(r.phase_reason == "" for rs in groups.values() for r in rs[1:])
    assert "patience" in (result.stopped_reason or "")  # the global patience ends the run
    assert result.iterations < 16


def test_auto_phases_are_read_back_from_the_records() -> None:
    def record(i: int, phase: int, strategy: str, status: str) -> IterationRecord:
        return IterationRecord(
            idx=i, strategy=strategy, status=status, prompt="p", prompt_hash="h", phase=phase
        )

    records = [
        IterationRecord(idx=0, strategy="baseline", status="baseline", prompt="p", prompt_hash="h"),
        record(1, 1, "structural", "accepted"),
        record(2, 1, "structural", "rejected"),
        record(3, 2, "fewshot", "rejected"),
    ]
    assert phases(records) == [Phase(1, "structural", 2, 1, 1), Phase(2, "fewshot", 1, 1, 0)]


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("strategy", ["auto", "pareto", "duel"])
async def test_a_resumed_run_ends_like_an_uninterrupted_one(
    tmp_path: Path, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pools (pareto, duel) and the phases (auto) come back from the records."""
    judge = strategy == "duel"
    data = (
        unlabelled_dataset(tmp_path / "d.jsonl")
        if judge
        else small_dataset(tmp_path / "d.jsonl", 80)
    )
    plan = [
        proposal(f"{GOOD} Variant {i}.") if i % 3 == 2 else proposal(f"Variant {i}.")
        for i in range(12)
    ]

    async def run(store: str, sessions: list[int]) -> OptimizeResult:
        monkeypatch.setenv("ASSAY_STORE", str(tmp_path / store))
        with ScriptedServer(JudgeZoo(list(plan)) if judge else OptimizeZoo(list(plan))) as srv:
            result = await optimize(
                srv, data, strategy, judge=judge, max_iterations=sessions[0], patience=9
            )
            for more in sessions[1:]:
                result = await resume(srv, result.run_id, data, strategy, judge, more)
        return result

    whole = await run("whole", [4])
    parts = await run("parts", [2, 4])
    assert [r.status for r in parts.trajectory] == [r.status for r in whole.trajectory]
    assert [r.prompt_hash for r in parts.trajectory] == [r.prompt_hash for r in whole.trajectory]
    assert [r.phase for r in parts.trajectory] == [r.phase for r in whole.trajectory]
    assert parts.best_prompt == whole.best_prompt and parts.final.test == whole.final.test


async def resume(
    srv: ScriptedServer, run_id: str, data: Path, strategy: str, judge: bool, iterations: int
) -> OptimizeResult:
    store = RunStore.open(os.environ["ASSAY_STORE"])
    run = store.get_run(run_id)
    config = loop.stored_config(run)
    config = config.model_copy(update={"stop": StopRules(max_iterations=iterations, patience=9)})
    prepared = loop.prepare(config)
    loop.check_resumable(prepared, run)
    return await loop.optimize(prepared, services(), run_id)


# --------------------------------------------------------------------------- embedded model
# The CLI runs in a process of its own here: a native crash in the model must not end pytest.


def model_args(data: Path, out: Path, strategy: str, *extra: str) -> list[str]:
    return [
        "optimize", str(data), PROMPT, "-m", "local/smollm2", "--strategy", strategy,
        "--max-iterations", "1", "--max-tokens", "8", "--reasoning-max-tokens", "64",
        "--batch-size", "4", "-o", str(out), "--json", *extra,
    ]  # fmt: skip


def check_model_run(proc: Any, out: Path, strategy: str) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["strategy"] == strategy and result["iterations"] == 1
    step = result["trajectory"][1]
    assert step["status"] in ("accepted", "rejected") and step["reason"]
    assert load_prompt(out).hash == result["final"]["prompt_hash"]
    assert result["final"]["test"]["n_scored"] + result["final"]["test"]["n_unscored"] > 0
    return result


@pytest.mark.parametrize("parses", [True, False], ids=["rewrites", "unparsable-reasoner"])
@pytest.mark.parametrize(
    "strategy", ["iterative", "structural", "fewshot", "pareto", "duel", "screen", "auto"]
)
async def test_the_preflight_estimate_bounds_the_calls_each_strategy_makes(
    tmp_path: Path, strategy: str, parses: bool
) -> None:
    judge = strategy == "duel"
    data = (
        unlabelled_dataset(tmp_path / "d.jsonl")
        if judge
        else small_dataset(tmp_path / "d.jsonl", 60)
    )
    # An unparsable reply is asked again (the error fed back): the bound must count the asks.
    zoo = JudgeZoo(
        lambda i: (
            proposal(f"Classify the sentiment, variant {i}. One word.")
            if parses
            else "I would make the prompt clearer."
        )
    )
    with ScriptedServer(zoo) as srv:
        config = strategy_config(srv, data, strategy, judge=judge, max_iterations=4, patience=10)
        prepared = loop.prepare(config)
        rows = {r.label.split()[0]: r.calls for r in estimate(prepared, PriceTable.bundled())}
        svc = services()
        result = await loop.optimize(prepared, svc, loop.start(prepared, svc))
        served = Counter(r.body.get("model") for r in srv.requests)
    assert len(result.trajectory) == 5  # every step ran: the bound is tested at full length
    assert 0 < served["task"] <= rows["task"]
    assert served["reasoner"] <= rows["reasoning"]
    assert served["judge"] <= rows.get("judge", 0)


@pytest.mark.model
@pytest.mark.parametrize("strategy", ["structural", "fewshot", "pareto", "screen", "auto"])
def test_embedded_model_runs_each_strategy(tmp_path: Path, strategy: str) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 30)
    out = tmp_path / "best.md"
    proc = assay_process(*model_args(data, out, strategy, "--metric", "label"), timeout=600)
    result = check_model_run(proc, out, strategy)
    if strategy == "fewshot":
        assert result["trajectory"][1]["demo_ids"]


@pytest.mark.model
def test_embedded_model_runs_duel_with_a_scripted_judge(tmp_path: Path) -> None:
    data = unlabelled_dataset(tmp_path / "d.jsonl", 30)
    rubric = tmp_path / "rubric.md"
    rubric.write_text("Score 5 when the answer names the sentiment in one word, else lower.")
    out = tmp_path / "best.md"
    zoo = JudgeZoo(["unused"])
    with ScriptedServer(zoo) as srv:
        judge = ["--judge", "compat/judge", "--judge-base-url", srv.base_url]
        proc = assay_process(
            *model_args(data, out, "duel", *judge, "--judge-criteria", str(rubric)), timeout=600
        )
    result = check_model_run(proc, out, "duel")
    assert result["trajectory"][1]["duels"] > 0 and zoo.pairwise
