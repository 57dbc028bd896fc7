"""The strategy registry: each entry carries its own help line, call estimate and config check."""

from __future__ import annotations

import pytest

from assay.errors import UserInputError
from assay.evaluation.config import ScoringConfig
from assay.optimizer.config import OptimizeConfig
from assay.optimizer.estimate import reasoning_calls, step_task_calls
from assay.optimizer.reasoner import PROPOSE_RETRIES
from assay.optimizer.strategies import (
    STRATEGY_TYPES,
    bootstrap,
    duel,
    fewshot,
    screen,
    strategy_menu,
    structural,
)
from assay.optimizer.strategies.auto import menu_for
from assay.optimizer.strategies.duel import DuelStrategy
from assay.providers.specs import resolve_model
from assay.scoring.judge import JudgeConfig

BATCHES = [1, 3, 8, 32]


def config(*, judge: bool) -> OptimizeConfig:
    """A config that is never run: the model points at a closed port."""
    model = resolve_model("compat/task", base_url="http://127.0.0.1:9/v1")
    scoring = ScoringConfig(
        metrics=[] if judge else ["label"],
        judge=JudgeConfig(models=[model], rubric="Good answers say GOOD.") if judge else None,
    )
    return OptimizeConfig(
        data="d.jsonl", prompt="p.md", model=model, scoring=scoring, strategy="duel"
    )


def test_every_strategy_has_a_help_line_and_the_menu_lists_them_in_order() -> None:
    lines = strategy_menu().splitlines()
    assert len(lines) == len(STRATEGY_TYPES)
    for line, (name, kind) in zip(lines, STRATEGY_TYPES.items(), strict=True):
        assert kind.name == name
        assert kind.menu.strip()
        assert line.split(maxsplit=1) == [name, kind.menu]
    # The help texts start in one column.
    assert (
        len(
            {
                line.index(kind.menu)
                for line, kind in zip(lines, STRATEGY_TYPES.values(), strict=True)
            }
        )
        == 1
    )


@pytest.mark.parametrize("batch", BATCHES)
def test_auto_costs_at_least_as_much_per_step_as_any_strategy_it_runs(batch: int) -> None:
    auto = step_task_calls("auto", batch)
    assert all(auto >= step_task_calls(name, batch) for name in STRATEGY_TYPES)


@pytest.mark.parametrize("batch", BATCHES)
def test_each_strategy_states_the_step_cost_of_what_it_evaluates(batch: int) -> None:
    expected = {
        "iterative": 2 * batch,
        "pareto": 2 * batch,
        "structural": (1 + len(structural.TRANSFORMS) + 1) * batch,
        "fewshot": (1 + fewshot.CANDIDATE_SETS) * batch,
        "duel": duel.DUELS_PER_STEP * duel.ITEMS_PER_DUEL * 2,
        # the parent, the bootstrap rows, every candidate and combination on the first half,
        # the promoted ones on the second half
        "screen": batch
        + bootstrap.BOOT_ROWS
        + (screen.MAX_CANDIDATES + screen.JOINT) * -(-batch // 2)
        + screen.KEEP * (batch // 2),
    }
    expected["auto"] = max(expected.values())
    assert {name: step_task_calls(name, batch) for name in STRATEGY_TYPES} == expected


def test_auto_offers_the_registry_in_its_order_filtered_by_what_the_run_has() -> None:
    offered = [name for name, kind in STRATEGY_TYPES.items() if kind.chooser_line]
    assert "auto" not in offered and offered[0] == "screen"
    assert list(menu_for(True, True)) == offered  # the help order is the fallback order
    assert "duel" not in menu_for(True, False)  # no judge
    label_free = menu_for(False, True)
    assert label_free[0] == "duel" and "fewshot" not in label_free  # no references
    assert all(STRATEGY_TYPES[n].needs_judge == (n == "duel") for n in STRATEGY_TYPES)


def test_reasoner_calls_are_the_asks_per_step_and_only_auto_adds_choices() -> None:
    retried = {"iterative", "pareto"}  # a rewrite that does not parse is asked again
    for name, kind in STRATEGY_TYPES.items():
        asks = 1 + PROPOSE_RETRIES if name in retried else 1
        assert kind.asks_per_step == asks, name
        if name != "auto":
            assert reasoning_calls(name, 7) == 7 * asks
    assert reasoning_calls("auto", 7) > 7 * (1 + PROPOSE_RETRIES)


def test_duel_rejects_a_config_without_a_judge() -> None:
    with pytest.raises(UserInputError, match="needs a judge"):
        DuelStrategy.check_config(config(judge=False))
    DuelStrategy.check_config(config(judge=True))


def test_other_strategies_accept_a_config_without_a_judge() -> None:
    for name, kind in STRATEGY_TYPES.items():
        if name != "duel":
            kind.check_config(config(judge=False))
