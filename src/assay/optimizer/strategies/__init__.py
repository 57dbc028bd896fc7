"""Search strategies: small objects with one method, ``step``, sharing the loop's bookkeeping.

A strategy receives the loop state and the context (whose ``evaluate`` is the evaluation step:
any function from prompt and samples to an Evaluation, so a pipeline can plug in there) and
returns one IterationRecord. The loop checkpoints it, applies it, and decides when to stop.

Each strategy class also carries what the rest of the tool reads before a run (see ``Strategy``):
its help line, whether it needs references, a judge or a reasoner, its worst-case calls, a check of
the configuration, and the line ``auto``'s chooser reads. Adding a strategy means one module here
and one entry in ``STRATEGY_TYPES``; ``auto`` offers every registered strategy with a
``chooser_line``, in this order.
"""

from __future__ import annotations

from assay.optimizer.strategies.auto import AutoStrategy
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.duel import DuelStrategy
from assay.optimizer.strategies.fewshot import FewShotStrategy
from assay.optimizer.strategies.iterative import IterativeStrategy
from assay.optimizer.strategies.pareto import ParetoStrategy
from assay.optimizer.strategies.screen import ScreenStrategy
from assay.optimizer.strategies.structural import StructuralStrategy

STRATEGY_TYPES: dict[str, type[Strategy]] = {
    AutoStrategy.name: AutoStrategy,
    ScreenStrategy.name: ScreenStrategy,
    IterativeStrategy.name: IterativeStrategy,
    ParetoStrategy.name: ParetoStrategy,
    StructuralStrategy.name: StructuralStrategy,
    FewShotStrategy.name: FewShotStrategy,
    DuelStrategy.name: DuelStrategy,
}
"""Every strategy by name, in the order the help lists them and ``auto`` falls back through."""


def strategy_menu() -> str:
    """One help line per strategy, in registry order, the texts lined up past the longest name."""
    width = max(map(len, STRATEGY_TYPES)) + 2
    return "\n".join(f"  {name:<{width}}{kind.menu}" for name, kind in STRATEGY_TYPES.items())


__all__ = [
    "STRATEGY_TYPES",
    "AutoStrategy",
    "DuelStrategy",
    "FewShotStrategy",
    "IterativeStrategy",
    "ParetoStrategy",
    "ScreenStrategy",
    "Strategy",
    "StructuralStrategy",
    "strategy_menu",
]
