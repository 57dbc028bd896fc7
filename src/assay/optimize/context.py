"""What a strategy works with: the run's services (context) and the search so far (state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from assay.data.prompts import PromptTemplate
from assay.engine.engine import Engine
from assay.optimize.config import OptimizeConfig
from assay.optimize.evaluate import EvaluateFn, Evaluation
from assay.optimize.records import IterationRecord, Spend
from assay.optimize.split import Split
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
