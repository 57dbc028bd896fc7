"""What an optimization run records per iteration, and its result (schema ``assay.optimize/v1``)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, Field

from assay.scoring.stats import Aggregate, PairedComparison

OPTIMIZE_SCHEMA = "assay.optimize/v1"


class Spend(BaseModel):
    """Cumulative across sessions of the run (resumes add to it)."""

    calls: int = 0
    cached_calls: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    reasoning_input_tokens: int = 0
    reasoning_output_tokens: int = 0


class IterationRecord(BaseModel):
    idx: int
    strategy: str
    status: str  # "baseline", "accepted", "rejected"
    reason: str = ""
    parent_hash: str | None = None
    prompt_hash: str
    prompt: str
    diagnosis: str = ""
    explanation: str = ""
    diff: str = ""
    train_parent: float | None = None
    train_candidate: float | None = None
    val_candidate: float | None = None
    val_best_before: float | None = None
    gain: float | None = None
    noise: float | None = None
    examples_shown: int = 0
    reasoner_replies: list[str] = Field(default_factory=list)
    spend: Spend = Spend()
    # Strategy-specific, optional (older runs lack them):
    phase: int | None = None  # auto: the phase (1, 2, ...) that produced this record
    phase_reason: str = ""  # auto: why the phase's strategy was chosen
    candidate_scores: dict[str, float | None] = Field(default_factory=dict)  # train-batch means
    demo_ids: list[str] = Field(default_factory=list)  # fewshot: the train rows shown
    win_rate: float | None = None  # duel: pairwise win rate, its own scale (never a val score)
    duels: int = 0  # duel: pairwise comparisons judged in this step
    strategy_state: dict[str, Any] = Field(default_factory=dict)  # what a resume rebuilds from

    @property
    def train_score(self) -> float | None:
        return self.train_candidate if self.train_candidate is not None else self.train_parent


class TestScores(BaseModel):
    prompt_hash: str
    val: Aggregate
    test: Aggregate


class SplitInfo(BaseModel):
    train: int
    val: int
    test: int
    seed: int
    stratified: bool


class OptimizeResult(BaseModel):
    schema_version: str = Field(default=OPTIMIZE_SCHEMA, alias="schema")
    run_id: str
    status: str
    stopped_reason: str | None
    data: str
    dataset_sha256: str
    split: SplitInfo
    model: str
    reasoning_model: str
    strategy: str
    metric: str
    baseline: TestScores
    final: TestScores
    gain: PairedComparison
    relative_gain: float | None
    val_test_gap: float | None
    iterations: int
    accepted: int
    spend: Spend
    best_prompt: str
    trajectory: list[IterationRecord]

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def prompt_diff(parent: str, child: str) -> str:
    lines = difflib.unified_diff(
        parent.splitlines(), child.splitlines(), "parent", "candidate", lineterm="", n=2
    )
    return "\n".join(lines)
