"""The class every strategy derives from: one step of the search plus what the rest of the tool
needs to know about it before a run (its help line, its needs, its worst-case cost)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from assay.optimizer.config import OptimizeConfig
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.records import IterationRecord


class Strategy(ABC):
    """A search strategy. Subclasses state their name, help line and step cost; the defaults
    fit a strategy that rewrites with the reasoner once per step and needs no references."""

    name: ClassVar[str]
    menu: ClassVar[str]  # one line for ``assay optimize --help``
    needs_reference: ClassVar[bool] = False
    needs_judge: ClassVar[bool] = False
    uses_reasoner: ClassVar[bool] = True
    # What ``auto``'s chooser is told about this strategy; empty: auto never runs it as a phase.
    chooser_line: ClassVar[str] = ""
    # Reasoner calls one step may make: more than one when an unparsable reply is asked again.
    asks_per_step: ClassVar[int] = 1

    @abstractmethod
    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord: ...

    @classmethod
    @abstractmethod
    def step_task_calls(cls, batch: int) -> int:
        """Worst-case task calls of one step on train, val excluded. No default: the pre-flight
        estimate is a bound the user relies on, so each strategy states its own."""

    @classmethod
    def reasoning_calls(cls, iterations: int) -> int:
        """Worst-case reasoner calls over a run of ``iterations`` steps."""
        return iterations * cls.asks_per_step

    @classmethod
    def check_config(cls, config: OptimizeConfig) -> None:
        """Reject a configuration this strategy cannot work with; called before any model call."""
        return None  # most strategies work with any configuration the loop accepts
