"""Search strategies: small objects with one method, ``step``, sharing the loop's bookkeeping.

A strategy receives the loop state and the context (whose ``evaluate`` is the evaluation step:
any function from prompt and samples to an Evaluation, so a pipeline can plug in there) and
returns one IterationRecord. The loop checkpoints it, applies it, and decides when to stop.
"""

from __future__ import annotations

from typing import Protocol

from assay.optimize.context import LoopState, OptimizeContext
from assay.optimize.records import IterationRecord
from assay.optimize.strategies.auto import AutoStrategy
from assay.optimize.strategies.duel import DuelStrategy
from assay.optimize.strategies.fewshot import FewShotStrategy
from assay.optimize.strategies.iterative import IterativeStrategy
from assay.optimize.strategies.pareto import ParetoStrategy
from assay.optimize.strategies.structural import StructuralStrategy


class Strategy(Protocol):
    name: str

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord: ...


STRATEGY_TYPES: dict[str, type[Strategy]] = {
    AutoStrategy.name: AutoStrategy,
    IterativeStrategy.name: IterativeStrategy,
    StructuralStrategy.name: StructuralStrategy,
    FewShotStrategy.name: FewShotStrategy,
    ParetoStrategy.name: ParetoStrategy,
    DuelStrategy.name: DuelStrategy,
}
"""Every strategy by name. A type may define ``check_config(config)``: the loop calls it in
``prepare``, before any model call, to reject a configuration it cannot work with."""

__all__ = [
    "STRATEGY_TYPES",
    "AutoStrategy",
    "DuelStrategy",
    "FewShotStrategy",
    "IterativeStrategy",
    "ParetoStrategy",
    "Strategy",
    "StructuralStrategy",
]
