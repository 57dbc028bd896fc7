"""The optimizer's accept rule: its false-accept rate holds for many candidates and many looks.

A "null" candidate is no better than the best prompt: its per-row correctness on val is drawn
with the best prompt's own probability. The rule may accept such a candidate in at most
``alpha`` of runs (``Acceptance.alpha``, 0.05 by default); the one-candidate noise bar the loop
used before (gain >= max(min_gain, 1 standard error)) is kept here as a pure function to show
that it does not hold that level on the same data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assay.data import load_dataset
from assay.data.prompts import PromptTemplate
from assay.optimizer.config import Acceptance
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.records import IterationRecord
from assay.optimizer.selection import (
    WORST_SD,
    confirm,
    detectable_gain,
    judge_diffs,
    look_alpha,
    plan,
)
from assay.optimizer.strategies import STRATEGY_TYPES, Strategy
from assay.records import Sample
from assay.scoring.stats import MaxSignFlipTest, SignFlipTest
from assay.store.runstore import RunStore
from assay.testing import Action, ScriptedServer, reply
from tests.optimize_helpers import (
    FLIP,
    MAGIC,
    POISON,
    OptimizeZoo,
    optimize_args,
    proposal,
    small_dataset,
)
from tests.run_helpers import assay

ALPHA = Acceptance().alpha
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
MIN_GAIN = Acceptance().min_gain


def old_noise_bar_accepts(diffs: np.ndarray) -> bool:
    """The rule this change replaced: one candidate, gain >= max(min_gain, 1 standard error)."""
    gain = float(diffs.mean())
    se = float(diffs.std(ddof=1)) / math.sqrt(len(diffs))
    return gain > 0 and gain >= max(MIN_GAIN, 1.0 * se)


def new_rule_accepts(diffs: np.ndarray, look: int, seed: int) -> bool:
    return judge_diffs(diffs, look, ALPHA, seed).accepts(MIN_GAIN)


# --- the statistic ---------------------------------------------------------------------------


def test_one_candidate_is_the_one_sided_paired_sign_flip_test() -> None:
    diffs = np.array([1, 1, 0, 1, -1, 1, 0, 1, 1, 0, 1, 1], dtype=np.float64)
    one_sided = MaxSignFlipTest(diffs[None, :]).p_value()
    two_sided = SignFlipTest(diffs).p_value()
    assert one_sided == pytest.approx(two_sided / 2)  # a symmetric null: half of |sum| >= 6


@pytest.mark.parametrize("n", [12, 40])  # exact flips, then seeded random ones
def test_the_bar_is_the_threshold_the_p_value_applies(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(30):
        diffs = rng.integers(-1, 2, size=(3, n)).astype(np.float64)
        test = MaxSignFlipTest(diffs, seed=1)
        for alpha in (0.05, 0.0125):
            bar = test.bar(alpha)
            clears = bar is not None and test.observed >= bar - 1e-9
            assert clears == (test.p_value() <= alpha)


def test_more_candidates_on_the_same_rows_raise_the_bar() -> None:
    rng = np.random.default_rng(0)
    incumbent = rng.random(40) < 0.5
    candidates = (rng.random((8, 40)) < 0.5).astype(np.float64) - incumbent
    bars = [MaxSignFlipTest(candidates[:k], seed=0).bar(0.025) or 1.0 for k in (1, 2, 4, 8)]
    assert bars == sorted(bars) and bars[0] < bars[-1] < 1.0


def test_the_detectable_gain_falls_with_val_rows_and_says_when_none_is() -> None:
    first = look_alpha(ALPHA, 1)
    assert detectable_gain(5, first, 0.8, WORST_SD) is None  # 2**-5 > 0.025: nothing can pass
    gains = [detectable_gain(n, first, 0.8, WORST_SD) for n in (8, 40, 160)]
    assert gains[0] is not None and gains[1] is not None and gains[2] is not None
    assert gains[0] > gains[1] > gains[2]
    assert gains[1] == pytest.approx(2.80 * WORST_SD / math.sqrt(40), abs=0.01)
    stated = plan(Acceptance(), 40, baseline_sd=0.3)
    assert stated.sd == pytest.approx(0.3 * math.sqrt(2)) and stated.detectable_gain is not None
    assert stated.detectable_gain < gains[1]  # the baseline's spread is narrower than the worst


# --- the false-accept rate, simulated ---------------------------------------------------------


def simulated_run(
    rng: np.random.Generator, rows: int, looks: int, k: int, accepts: Callable[..., bool]
) -> bool:
    """One run of ``looks`` looks at val, k null candidates each; True when any is accepted."""
    p = rng.uniform(0.2, 0.8)
    incumbent = (rng.random(rows) < p).astype(np.float64)
    for look in range(1, looks + 1):
        candidates = (rng.random((k, rows)) < p).astype(np.float64)
        if accepts(candidates - incumbent, look):
            return True
    return False


@pytest.mark.parametrize(("rows", "k"), [(12, 1), (30, 1), (30, 6)])
def test_null_candidates_are_accepted_in_at_most_alpha_of_runs(rows: int, k: int) -> None:
    runs, looks = 250, 5
    rng = np.random.default_rng(rows * 10 + k)
    new = sum(
        simulated_run(rng, rows, looks, k, lambda d, look: new_rule_accepts(d, look, look))
        for _ in range(runs)
    )
    rng = np.random.default_rng(rows * 10 + k)  # the same runs, judged by the old bar
    old = sum(
        simulated_run(rng, rows, looks, k, lambda d, look: any(map(old_noise_bar_accepts, d)))
        for _ in range(runs)
    )
    assert new / runs <= ALPHA
    assert old / runs > 4 * ALPHA  # one candidate at a time, one standard error: far above


def test_a_real_gain_is_still_accepted() -> None:
    rng = np.random.default_rng(3)
    accepted = 0
    for seed in range(100):
        incumbent = (rng.random(60) < 0.4).astype(np.float64)
        better = np.maximum(incumbent, rng.random(60) < 0.35)  # fixes ~20% of the rows
        accepted += new_rule_accepts((better - incumbent)[None, :], 1, seed)
    assert accepted >= 80


# --- the false-accept rate through the loop (scripted server, seeded) ---------------------------

NULL_ACCURACY = 55  # every prompt, the best one included, is right on this share of rows


class NullZoo(OptimizeZoo):
    """A task model whose correctness per (prompt, row) is a seeded coin with the same bias
    for every prompt; the reasoner proposes a new wording every time."""

    def __init__(self, seed: int) -> None:
        super().__init__(lambda i: proposal(f"Say positive or negative. Wording {seed}-{i}."))

    def _answer(self, system: str, text: str) -> Action:
        right = hashlib.sha256(f"{system}|{text}".encode()).digest()[0] % 100 < NULL_ACCURACY
        truth = self.truth.get(text, "positive")
        return reply(truth if right else FLIP[truth], input_tokens=30, output_tokens=1)


def old_rule_on_the_same_looks(store: RunStore, result: dict) -> bool:  # type: ignore[type-arg]
    """Would the old bar have accepted a candidate the run looked at on val (before any
    acceptance, so against the same best prompt)? Read from the stored per-row results."""
    run = store.get_run(result["run_id"])
    val_ids = run.config.split_ids("val")
    metric = run.config.primary_metric
    values: dict[str, dict[str, float]] = {}
    for r in store.results(result["run_id"]):
        score = r.scores.get(metric)
        if r.sample_id in val_ids and score is not None and score.value is not None:
            values.setdefault(r.variant, {})[r.sample_id] = score.value
    base = values[f"prompt:{result['trajectory'][0]['prompt_hash'][:16]}"]
    for record in result["trajectory"][1:]:
        if record["status"] == "accepted":
            return True  # the new rule accepted first: the old one had too, or would have here
        if record["val_candidate"] is None:
            continue
        cand = values[f"prompt:{record['prompt_hash'][:16]}"]
        diffs = np.array([cand[i] - base[i] for i in val_ids if i in cand and i in base])
        if old_noise_bar_accepts(diffs):
            return True
    return False


def test_through_the_loop_null_rewrites_are_rarely_accepted_and_the_old_bar_took_them(
    tmp_path: Path,
) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    runs, new, old = 30, 0, 0
    store = RunStore.open(os.environ["ASSAY_STORE"])
    for seed in range(runs):
        with ScriptedServer(NullZoo(seed)) as srv:
            args = optimize_args(srv, data, "--max-iterations", "4", "--patience", "10")
            proc = assay(*args, "--seed", str(seed), "--split", "0.35,0.4,0.25")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        looks = [r for r in result["trajectory"][1:] if r["val_candidate"] is not None]
        assert [r["val_look"] for r in looks] == list(range(1, len(looks) + 1))
        new += result["accepted"] > 0
        old += old_rule_on_the_same_looks(store, result)
    print(f"null rewrites accepted in {new}/{runs} runs; the old bar: {old}/{runs}")
    assert new / runs <= ALPHA
    assert old / runs > 2 * ALPHA


# --- a look with several candidates, through the loop -------------------------------------------


class TrioStrategy(Strategy):
    """Promotes three rewrites to one look at val: a poor one, the good one, a neutral one."""

    name = "trio"
    menu = "three candidates per look (test only)"

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        return 0

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        texts = [f"Tell a {POISON} about it.", GOOD, "Say positive or negative, please."]
        records = [
            (
                IterationRecord(
                    idx=len(state.records),
                    strategy=self.name,
                    status="rejected",
                    parent_hash=state.best.hash,
                    prompt_hash=PromptTemplate.from_text(text).hash,
                    prompt=text,
                    val_best_before=state.best_val.mean,
                ),
                PromptTemplate.from_text(text),
            )
            for text in texts
        ]
        return await confirm(records, state, ctx)


@pytest.mark.parametrize(("rows", "looked"), [(240, 3), (60, 1)])
def test_a_look_compares_every_promoted_candidate_unless_val_is_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, looked: int
) -> None:
    monkeypatch.setitem(STRATEGY_TYPES, "trio", TrioStrategy)
    data = small_dataset(tmp_path / "d.jsonl", rows)
    zoo = OptimizeZoo(["unused"])
    with ScriptedServer(zoo) as srv:
        args = optimize_args(srv, data, "--max-iterations", "1", "--split", "0.3,0.4,0.3")
        proc = assay(*["trio" if a == "iterative" else a for a in args])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    record = result["trajectory"][1]
    val_rows = result["split"]["val"]
    assert record["val_candidates"] == looked and record["val_rows"] == val_rows
    val_texts = {s.input_text() for s in split_of(data, result)}
    on_val = {system for _, system, text in zoo.log if text in val_texts}
    assert len(on_val) == 1 + looked  # the best prompt and each candidate looked at
    many = "candidates" if looked > 1 else "candidate"
    assert f"{looked} {many}, {val_rows} val rows" in record["reason"]
    if looked == 3:  # the good one wins the look, past a bar that counts all three
        assert record["status"] == "accepted" and record["prompt"] == GOOD
        diffs = val_diffs(
            result, [f"Tell a {POISON} about it.", GOOD, "Say positive or negative, please."]
        )
        bar = MaxSignFlipTest(diffs, seed=1).bar(record["alpha"])
        alone = MaxSignFlipTest(diffs[1:2], seed=1).bar(record["alpha"])
        assert bar is not None and alone is not None and alone < bar == pytest.approx(record["bar"])


def val_diffs(result: dict, prompts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
    """Each prompt's per-row val score minus the starting prompt's, from the run store."""
    store = RunStore.open(os.environ["ASSAY_STORE"])
    ids = store.get_run(result["run_id"]).config.split_ids("val")
    scores: dict[tuple[str, str], float] = {}
    for r in store.results(result["run_id"]):
        if r.sample_id in ids and (score := r.scores.get("label")) is not None:
            scores[(r.variant, r.sample_id)] = score.value or 0.0
    key = f"prompt:{result['trajectory'][0]['prompt_hash'][:16]}"
    keys = [f"prompt:{PromptTemplate.from_text(p).hash[:16]}" for p in prompts]
    return np.array([[scores[(k, i)] - scores[(key, i)] for i in ids] for k in keys])


def split_of(data: Path, result: dict) -> list[Sample]:  # type: ignore[type-arg]
    store = RunStore.open(os.environ["ASSAY_STORE"])
    ids = set(store.get_run(result["run_id"]).config.split_ids("val"))
    return [s for s in load_dataset(data).samples if s.id in ids]
