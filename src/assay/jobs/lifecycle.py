"""What every job shares: what a resume may change, and how a run ends when it is cut short.

A resume may raise the budget or change concurrency; nothing that changes results. Ctrl-C
marks the run ``interrupted`` and raises ``JobInterrupted``; any other unexpected error marks
it ``failed``. Both leave the run resumable. These rules hold for the CLI and the Python API
alike, because both call the jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from assay.engine.engine import EngineConfig
from assay.errors import AssayError, BudgetExceeded
from assay.store.runstore import RunStore

T = TypeVar("T")


class JobInterrupted(AssayError):
    """Ctrl-C during a job: the run is marked ``interrupted``; completed work is kept."""

    def __init__(self, run_id: str, command: str) -> None:
        super().__init__(
            f"Interrupted; completed work is saved in run {run_id}",
            f"continue with: assay {command} --resume {run_id}",
        )
        self.run_id = run_id


class ResumeChanges(BaseModel):
    """What a resume may change. ``None`` keeps the value the run was started with."""

    model_config = ConfigDict(frozen=True)

    max_cost_usd: float | None = Field(default=None, ge=0)
    max_calls: int | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1)

    def apply(self, stored: EngineConfig) -> EngineConfig:
        budget = stored.budget.model_copy(
            update={
                k: v
                for k, v in (("max_cost_usd", self.max_cost_usd), ("max_calls", self.max_calls))
                if v is not None
            }
        )
        concurrency = self.concurrency or stored.concurrency
        return stored.model_copy(update={"budget": budget, "concurrency": concurrency})


def run_to_end(work: Coroutine[Any, Any, T], store: RunStore, run_id: str, command: str) -> T:
    """Run a job's coroutine; a run cut short is never left ``running``."""
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted")
        raise JobInterrupted(run_id, command) from None
    except BudgetExceeded:  # a budget that ran out is a stop, not a failure
        store.set_status(run_id, "stopped")
        raise
    except BaseException:
        store.set_status(run_id, "failed")
        raise
