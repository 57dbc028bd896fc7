"""What a strategy works with: the run's services (context) and the search so far (state)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from assay.data.prompts import PromptTemplate
from assay.engine.engine import Engine
from assay.optimizer.config import OptimizeConfig
from assay.optimizer.evaluate import EvaluateFn, Evaluation
from assay.optimizer.records import IterationRecord, Spend
from assay.optimizer.split import Split
from assay.store.runstore import RunStore


@dataclass
class OptimizeContext:
    config: OptimizeConfig
    run_id: str
    store: RunStore
    engine: Engine
    evaluate: EvaluateFn
    split: Split
    scoring_text: str
    spend_before: Spend = field(default_factory=Spend)  # earlier sessions of this run
    # Model calls one evaluated sample makes: 1, or a pipeline's mean measured so far.
    task_calls: Callable[[], float] = field(default=lambda: 1.0)

    @property
    def calls_per_item(self) -> int:
        judge = self.config.scoring.judge
        return math.ceil(self.task_calls()) + (judge.repeats * len(judge.models) if judge else 0)

    def spare_calls(self) -> int | None:
        """Calls the budget allows after reserving one val check and the final test (None: no
        budget). Strategies that try several candidates per step size their work with it, so the
        loop's between-step check, which assumes two batches and val, still leaves test covered.
        """
        budget, ledger = self.engine.config.budget, self.engine.ledger
        reserve = (len(self.split.val) + 2 * len(self.split.test)) * self.calls_per_item + 3
        left: list[float] = []
        if budget.max_calls is not None:
            left.append(budget.max_calls - ledger.calls - reserve)
        if budget.max_cost_usd is not None and ledger.calls and ledger.spent_usd > 0:
            per_call = ledger.spent_usd / ledger.calls  # reasoning calls make this conservative
            left.append((budget.max_cost_usd - ledger.spent_usd) / per_call - reserve)
        return max(0, int(min(left))) if left else None

    def affordable(self, items_each: int, wanted: int) -> int:
        """How many of ``wanted`` candidates, each evaluated on ``items_each`` samples, fit."""
        spare = self.spare_calls()
        if spare is None:
            return wanted
        return max(0, min(wanted, spare // max(1, items_each * self.calls_per_item)))


@dataclass
class LoopState:
    baseline: PromptTemplate
    best: PromptTemplate
    best_val: Evaluation
    records: list[IterationRecord] = field(default_factory=list)
    since_improvement: int = 0
    stopped_reason: str | None = None

    @property
    def iterations_done(self) -> int:
        return max(0, len(self.records) - 1)  # record 0 is the baseline
