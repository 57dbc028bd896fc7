"""Per-variant figures from the run store's result rows: quality, cost, latency, tokens."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from assay.scoring.metrics import confusion_matrix_of_counts
from assay.scoring.scorer import JUDGE_SCORE
from assay.scoring.stats import Aggregate, aggregate_values, percentile
from assay.scoring.unscored import CONTEXT_OVERFLOW, REQUEST_ERROR, UNRECORDED
from assay.store.runstore import CompletionRow, ResultRow, ScoreRow


class VariantSummary(BaseModel):
    variant: str
    model: str
    n_requests: int
    n_errors: int
    score: Aggregate | None
    metrics: dict[str, Aggregate] = Field(default_factory=dict)
    cost_per_1k_usd: float | None  # task model, from real usage (cache hits at original cost)
    task_cost_usd: float | None
    spent_usd: float | None  # what this run actually paid (cache hits are free)
    judge_cost_usd: float | None
    total_cost_usd: float | None
    # Latency and throughput: calls measured in this run only (cache hits are not re-timed).
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_mean_ms: float | None
    output_tokens_per_s: float | None
    input_tokens_per_request: float | None
    output_tokens_per_request: float | None
    cached_requests: int = 0
    latency_measured: int = 0  # completions whose latency the figures above are made of
    judge_unscored: dict[str, int] = Field(default_factory=dict)  # cause -> count, most first
    self_hosting_cost_per_1k_usd: float | None = None
    batch_requests: int = 0  # answered through a batch API (at its price; no latency measured)
    batch_discount: float | None = None  # the share of the price that batch API takes off
    confusion: dict[str, dict[str, int]] | None = None  # label metric: expected -> predicted


# Score details the summary reads: the label metric's pair, the judge's cost, and why a
# judgement is missing (error_kind for runs recorded before unscored_cause).
SUMMARY_DETAILS = ("expected", "predicted", "cost_usd", "unscored_cause", "error_kind")
LABEL_METRIC = "label"


@dataclass
class MetricTally:
    """One metric's scored values, in item order, and how many items had none."""

    values: array[float] = field(default_factory=lambda: array("d"))
    n_unscored: int = 0
    n_errors: int = 0

    def add(self, score: ScoreRow) -> None:
        if score.is_scored and score.value is not None:
            self.values.append(score.value)
        elif score.status == "error":
            self.n_errors += 1
        else:
            self.n_unscored += 1

    def aggregate(self, seed: int) -> Aggregate:
        return aggregate_values(self.values, self.n_unscored, self.n_errors, seed=seed)


class VariantTally:
    """One variant's figures, folded in one result at a time; the results are not kept.

    Cost and latency totals keep their terms (8 bytes each) and add them with ``sum()`` at the
    end, in store order: ``sum()`` rounds differently from a running ``+=`` on Python 3.12+,
    and a figure must be the same number however the results were read.
    """

    def __init__(self) -> None:
        self.n_requests = 0
        self.n_errors = 0
        self.n_completions = 0
        self.cached_requests = 0
        self.batch_requests = 0
        self.metrics: dict[str, MetricTally] = {}
        # None once a cost is unknown: a partial sum would understate it
        self.task_costs: array[float] | None = array("d")
        self.spent_costs: array[float] | None = array("d")  # cache hits are free
        self.judge_cost: float | None = 0.0
        self.judge_unscored: Counter[str] = Counter()
        self.confusion: Counter[tuple[str, str | None]] = Counter()
        self.latencies_ms = array("d")
        self.timed_latencies_s = array("d")  # calls with output tokens and a latency
        self.timed_output_tokens = 0
        self.input_tokens = _Mean()
        self.output_tokens = _Mean()

    def add(self, row: ResultRow) -> None:
        self.n_requests += 1
        if row.error_kind:
            self.n_errors += 1
        for name, score in row.scores.items():
            self.metrics.setdefault(name, MetricTally()).add(score)
        self._add_judge_cost(row.scores.get(JUDGE_SCORE))
        self._add_judge_unscored(row.scores.get(JUDGE_SCORE))
        self._add_label_pair(row.scores.get(LABEL_METRIC))
        if row.completion is not None:
            self._add_completion(row.completion)

    def _add_judge_cost(self, judge: ScoreRow | None) -> None:
        if judge is None or "cost_usd" not in judge.details or self.judge_cost is None:
            return
        cost = judge.details["cost_usd"]
        self.judge_cost = None if cost is None else self.judge_cost + float(cost)

    def _add_judge_unscored(self, judge: ScoreRow | None) -> None:
        if judge is not None and judge.status == "unscored":
            self.judge_unscored[unscored_cause(judge.details)] += 1

    def _add_label_pair(self, label: ScoreRow | None) -> None:
        if label is not None and "expected" in label.details:
            self.confusion[(str(label.details["expected"]), label.details.get("predicted"))] += 1

    def _add_completion(self, c: CompletionRow) -> None:
        self.n_completions += 1
        self.cached_requests += int(c.cached)
        self.task_costs = _append_cost(self.task_costs, c.cost_usd)
        self.input_tokens.add(c.input_tokens)
        self.output_tokens.add(c.output_tokens)
        if c.cached:  # free now, and its latency was measured by the run that made the call
            return
        self.spent_costs = _append_cost(self.spent_costs, c.cost_usd)
        if c.batch:  # its latency is the batch's turnaround, not the model's
            self.batch_requests += 1
            return
        self.latencies_ms.append(c.latency_s * 1000)
        if c.output_tokens is not None and c.latency_s > 0:
            self.timed_latencies_s.append(c.latency_s)
            self.timed_output_tokens += c.output_tokens

    def summary(self, variant: str, model_spec: str, primary: str, seed: int = 0) -> VariantSummary:
        metrics = {name: self.metrics[name].aggregate(seed) for name in sorted(self.metrics)}
        task = _total(self.task_costs)
        judge = self.judge_cost
        return VariantSummary(
            variant=variant,
            model=model_spec,
            n_requests=self.n_requests,
            n_errors=self.n_errors,
            score=metrics.get(primary),
            metrics=metrics,
            cost_per_1k_usd=(
                None if task is None or not self.n_completions else task / self.n_completions * 1000
            ),
            task_cost_usd=task,
            spent_usd=_total(self.spent_costs),
            judge_cost_usd=judge,
            total_cost_usd=None if task is None or judge is None else task + judge,
            cached_requests=self.cached_requests,
            batch_requests=self.batch_requests,
            latency_measured=len(self.latencies_ms),
            judge_unscored=dict(sorted(self.judge_unscored.items(), key=_most_first)),
            confusion=confusion_matrix_of_counts(self.confusion) if self.confusion else None,
            **self._latency_and_tokens(),
        )

    def _latency_and_tokens(self) -> dict[str, float | None]:
        latencies = self.latencies_ms
        total_time = sum(self.timed_latencies_s)
        return {
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
            "latency_mean_ms": sum(latencies) / len(latencies) if latencies else None,
            "output_tokens_per_s": self.timed_output_tokens / total_time if total_time else None,
            "input_tokens_per_request": self.input_tokens.mean(),
            "output_tokens_per_request": self.output_tokens.mean(),
        }


def unscored_cause(details: dict[str, object]) -> str:
    """Why a judge score is unscored: the cause it recorded, else what its error says."""
    cause = details.get("unscored_cause")
    if isinstance(cause, str) and cause:
        return cause
    kind = details.get("error_kind")
    if kind == "context_length":
        return CONTEXT_OVERFLOW
    return REQUEST_ERROR if kind else UNRECORDED


def judge_unscored_total(variants: Iterable[VariantSummary]) -> dict[str, int]:
    """Unscored judge results by cause over ``variants``, the most common first."""
    total: Counter[str] = Counter()
    for v in variants:
        total.update(v.judge_unscored)
    return dict(sorted(total.items(), key=_most_first))


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


@dataclass
class _Mean:
    """Mean of the known token counts (integers: a running total is exact)."""

    total: int = 0
    n: int = 0

    def add(self, value: int | None) -> None:
        if value is not None:
            self.total += value
            self.n += 1

    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


def _append_cost(costs: array[float] | None, cost: float | None) -> array[float] | None:
    if costs is None or cost is None:
        return None
    costs.append(cost)
    return costs


def _total(costs: array[float] | None) -> float | None:
    return None if costs is None else sum(costs)


def summarise(
    variant: str, model_spec: str, rows: Iterable[ResultRow], primary: str, seed: int = 0
) -> VariantSummary:
    """One variant's summary from its result rows (see ``RunStore.result_rows``)."""
    tally = VariantTally()
    for row in rows:
        tally.add(row)
    return tally.summary(variant, model_spec, primary, seed)


def self_hosting_cost_per_1k(
    summary: VariantSummary, gpu_cost_per_hour: float, parallel: int
) -> float | None:
    """Measured mean latency with ``parallel`` requests in flight, priced by the hour."""
    if summary.latency_mean_ms is None:
        return None
    seconds_per_request = summary.latency_mean_ms / 1000 / max(1, parallel)
    return seconds_per_request * 1000 / 3600 * gpu_cost_per_hour
