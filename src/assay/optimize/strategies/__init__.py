"""Search strategies: small objects with one method, ``step``, sharing the loop's bookkeeping.

A strategy receives the loop state and the context (whose ``evaluate`` is the evaluation step:
any function from prompt and samples to an Evaluation, so a pipeline can plug in there) and
returns one IterationRecord. The loop checkpoints it, applies it, and decides when to stop.
"""

from __future__ import annotations

from typing import Protocol

from assay.optimize.context import LoopState, OptimizeContext
from assay.optimize.records import IterationRecord
from assay.optimize.strategies.iterative import IterativeStrategy


class Strategy(Protocol):
    name: str

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord: ...


STRATEGY_TYPES: dict[str, type[Strategy]] = {
    IterativeStrategy.name: IterativeStrategy,
}

__all__ = ["STRATEGY_TYPES", "IterativeStrategy", "Strategy"]
