"""``perf.decisions`` still runs and counts correctly (``--quick``: tiny N, no timing).

The error rates, calls saved and agreement it measures are in docs/benchmarks.md; at 30
repetitions they say little, so nothing here asserts them. What is checked could be wrong: the
simulated variants have the accuracies they are said to have, an error is what the docs call
one, every table parses and adds up, and the real engine decides as the simulation of the same
per-item scores does (the script exits 1 otherwise).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from perf import decisions
from perf.decisions import (
    EDGE,
    FOUR,
    Scenario,
    Setting,
    Verdicts,
    engine_case,
    label_of,
    product_replay,
    replay,
    right_answer,
    sequential_rule,
    simulate,
    wrong_claims,
)

from assay.analysis.decisions import Outcome
from tests.perf_helpers import markdown_table


@pytest.mark.parametrize("kind", ["0/1", "beta", "normal"])
def test_simulated_variants_have_their_stated_accuracies(kind: decisions.Kind) -> None:
    scores = simulate(Scenario(kind, 20_000, FOUR, False, reps=2), np.random.default_rng(1))
    assert scores.shape == (2, 4, 20_000)
    assert np.allclose(scores.mean(axis=(0, 2)), FOUR, atol=0.006)
    ease = np.corrcoef(scores[0])[0, 1]  # one latent ease per item: variants move together
    assert ease > 0.1
    if kind != "normal":
        assert scores.min() >= 0 and scores.max() <= 1
    else:
        assert scores.min() < 0 or scores.max() > 1  # unbounded: the asymptotic sequence


def test_the_scripted_models_answer_right_at_their_accuracy() -> None:
    for model, accuracy in (("acc90", 0.90), ("acc60", 0.60)):
        rate = np.mean([right_answer(model, item, seed=3) for item in range(4000)])
        assert abs(rate - accuracy) < 0.025, (model, rate)
    assert right_answer("acc75", 17, 3) == right_answer("acc75", 17, 3)  # a function of its inputs


def test_an_error_is_a_claim_the_true_accuracies_contradict() -> None:
    def wrong(accuracies: tuple[float, ...], variant: int, outcome: Outcome) -> set[str]:
        verdicts = Verdicts(0, {0: "reference", variant: outcome}, {})
        return wrong_claims(verdicts, accuracies)

    assert wrong(EDGE, 1, "non-inferior") == {"non-inferior"}  # exactly -margin: not within
    assert wrong(EDGE, 1, "inferior") == {"inferior"}  # nor beyond it
    assert wrong(FOUR, 1, "non-inferior") == set()  # 0.88 vs 0.90
    assert wrong(FOUR, 1, "superior") == {"superior"}
    assert wrong(FOUR, 2, "non-inferior") == {"non-inferior"}  # 0.75 vs 0.90
    assert wrong(FOUR, 2, "inferior") == set()
    assert wrong(FOUR, 3, "not settled") == set()


def test_a_claim_is_judged_against_the_reference_it_names() -> None:
    # acc75 stopped against acc88 (a round's best); the run's reference is acc90
    def wrong(outcome: Outcome) -> set[str]:
        verdicts = Verdicts(0, {0: "reference", 2: outcome}, {}, against={2: 1})
        return wrong_claims(verdicts, (0.90, 0.88, 0.84))

    assert wrong("non-inferior") == set()  # 0.84 - 0.88 = -0.04: within the margin of acc88
    assert wrong("inferior") == {"inferior"}  # though it is -0.06 from acc90


def test_the_shortened_replay_is_the_products_run_where_the_reference_moves(
    tmp_path: Path,
) -> None:
    """Seed 6 of Part B stops acc75 against acc88, the best of its round, not the final best."""
    labels = tuple(f"compat/{label_of(a)}" for a in FOUR)
    case = engine_case(6, 500, tmp_path, labels)
    setting = Setting(labels, 500, None, seed=6)
    fast = replay(sequential_rule(case.scores, setting), setting)
    product, report = product_replay(case.scores, setting, case.order)
    assert fast == product
    assert fast.final.reference == 0 and fast.final.against == {2: 1}
    assert fast.final.outcomes[2] == "inferior" and fast.seen[2] < 500
    assert "compat/acc75 is inferior to compat/acc88" in report.recommendation


def _count(cell: str) -> int:
    found = re.fullmatch(r"(\d+) \(\d+\.\d%\)", cell)
    assert found, cell
    return int(found.group(1))


def test_quick_run_prints_every_table_and_agrees_with_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "decisions.json"
    assert decisions.main(["--quick", "--markdown", "--json", str(out)]) == 0
    printed = capsys.readouterr().out

    errors = markdown_table(printed, "Part A: repetitions with a wrong claim")
    names = {row["scenario"] for row in errors}
    assert len(names) == 7  # 0/1 and beta, best and --baseline; three edge kinds
    for row in errors:
        claims = [
            _count(row[c]) for c in ("non-inferior wrong", "inferior wrong", "superior wrong")
        ]
        assert max(claims) <= _count(row["any wrong"]) <= min(sum(claims), int(row["reps"]))
        assert row["reps"] == "30"
    peeking = [row for row in errors if row["rule"].startswith("fixed n at every round")]
    assert {row["scenario"] for row in peeking} == {n for n in names if n.startswith("edge")}

    spend = markdown_table(printed, "Part A: what the adaptive run spends")
    assert {row["scenario"] for row in spend} == names
    for row in spend:
        assert float(row["calls vs full"].rstrip("%")) <= 100
        assert _count(row["same recommendation"]) <= 30
        against = _count(row["a verdict against a round's best"])
        assert against <= 30
        if "--baseline acc90" in row["scenario"]:  # the reference is never dropped nor changed
            assert row["median samples scored"].startswith("acc90 300,")
            assert against == 0

    engine = markdown_table(printed, "Part B: the real engine, adaptive vs full (200 items")
    assert [(r["reference"], r["run"]) for r in engine] == [
        ("best", "adaptive"), ("best", "full (baseline)"),
        ("acc90", "adaptive"), ("acc90", "full (baseline)"),
    ]  # fmt: skip
    assert all(r["= simulation"] == "yes" for r in engine)
    for adaptive, full in (engine[0:2], engine[2:4]):
        assert full["calls"] == "800" and full["samples acc90/88/75/60"] == "200/200/200/200"
        assert int(adaptive["calls"].replace(",", "")) == sum(
            int(n) for n in adaptive["samples acc90/88/75/60"].split("/")
        )
        assert float(adaptive["$"]) <= float(full["$"])
    assert re.search(r"Part A took \d+ s, Part B \d+ s\.", printed)

    data = json.loads(out.read_text())
    assert all(not s["mismatches"] and s["checked"] == 3 for s in data["scenarios"])
    for run in data["engine"]:
        assert run["agrees"] and sum(run["calls"].values()) == sum(run["samples"].values())
