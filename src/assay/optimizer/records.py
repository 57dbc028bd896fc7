"""What an optimization run records per iteration, and its result (schema ``assay.optimize/v1``)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, Field

from assay.records import EndpointUse
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
    gain: float | None = None  # paired val gain over the best prompt, on the look's rows
    noise: float | None = None  # older runs: the standard error their one-candidate bar used
    # The look at val that settled this record (see assay.optimizer.selection):
    bar: float | None = None  # the gain the look's best candidate had to reach
    alpha: float | None = None  # the share of the run's false-accept budget the look spent
    p_value: float | None = None  # one-sided, of the best of the look's candidates
    val_look: int | None = None  # 1 for the run's first look at val, 2 for the next, ...
    val_candidates: int = 0  # candidates compared on val in the look
    val_rows: int = 0  # val rows the best prompt and every candidate scored
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


class SelectionPlan(BaseModel):
    """How candidates were accepted, and the smallest val gain the rule can confirm."""

    method: str
    alpha: float  # the run's false-accept budget
    first_look_alpha: float
    power: float
    val_rows: int
    sd: float  # of a row's paired difference, assumed for the detectable gain
    sd_source: str
    detectable_gain: float | None  # None: val is too small to confirm any gain


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
    headline: str = ""  # the first line: did the gain hold on test?
    val_gain: float | None = None  # final minus starting prompt on val (test: ``gain.diff``)
    selection: SelectionPlan | None = None
    iterations: int
    accepted: int
    spend: Spend
    best_prompt: str
    trajectory: list[IterationRecord]
    # Calls, errors and cool-downs per endpoint (base URL), over the run's sessions.
    endpoints: list[EndpointUse] = Field(default_factory=list)

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def headline_verdict(result: OptimizeResult) -> str:
    """What held on test, in a few words: the start of the headline (and of the report's)."""
    g = result.gain
    if result.baseline.prompt_hash == result.final.prompt_hash:
        return "No change kept"
    if g.diff is None:
        return "No test comparison"
    if g.significant:
        return f"Significant {'gain' if g.diff > 0 else 'loss'} on test"
    return "Not a significant gain on test"


def result_headline(result: OptimizeResult) -> str:
    """One line that says whether the gain held on test: significance comes first, not only
    in the p-value."""
    g, base, verdict = result.gain, result.baseline, headline_verdict(result)
    if result.baseline.prompt_hash == result.final.prompt_hash:
        return (
            f"{verdict}: no candidate cleared the bar on val; the starting prompt scores "
            f"{_num(base.test.mean)} on test (n={base.test.n_scored})."
        )
    if g.diff is None:
        return f"{verdict}: the two prompts share no scored test row."
    p = "p<0.001" if (g.p_value or 1.0) < 0.001 else f"p={_num(g.p_value, '{:.3g}')}"
    numbers = (
        f"{_num(g.mean_a)} -> {_num(g.mean_b)} ({g.diff:+.3f}, 95% CI "
        f"[{_num(g.ci_low, '{:+.3f}')}, {_num(g.ci_high, '{:+.3f}')}], {p}, n={g.n})"
    )
    if g.significant or result.val_gain is None:
        return f"{verdict}: {numbers}."
    return f"{verdict}: {numbers}; val had shown {result.val_gain:+.3f}."


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "–" if value is None else fmt.format(value)


def prompt_diff(parent: str, child: str) -> str:
    lines = difflib.unified_diff(
        parent.splitlines(), child.splitlines(), "parent", "candidate", lineterm="", n=2
    )
    return "\n".join(lines)
