"""Per-variant figures computed from the run store's records: quality, cost, latency, tokens."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from assay.records import Completion
from assay.scoring.metrics import confusion_matrix
from assay.scoring.scorer import JUDGE_SCORE
from assay.scoring.stats import Aggregate, aggregate, percentile
from assay.store.runstore import ResultRecord


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
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_mean_ms: float | None
    output_tokens_per_s: float | None
    input_tokens_per_request: float | None
    output_tokens_per_request: float | None
    cached_requests: int = 0
    self_hosting_cost_per_1k_usd: float | None = None
    confusion: dict[str, dict[str, int]] | None = None  # label metric: expected -> predicted


def group_by_variant(results: Sequence[ResultRecord]) -> dict[str, list[ResultRecord]]:
    groups: dict[str, list[ResultRecord]] = defaultdict(list)
    for r in results:
        groups[r.variant].append(r)
    return dict(groups)


def summarise(
    variant: str, model_spec: str, results: Sequence[ResultRecord], primary: str, seed: int = 0
) -> VariantSummary:
    completions = [r.completion for r in results if r.completion is not None]
    metric_names = sorted({name for r in results for name in r.scores})
    metrics = {
        name: aggregate([r.scores[name] for r in results if name in r.scores], seed=seed)
        for name in metric_names
    }
    task = _sum_cost(completions)
    judge = _judge_cost(results)
    return VariantSummary(
        variant=variant,
        model=model_spec,
        n_requests=len(results),
        n_errors=sum(1 for r in results if r.error_kind),
        score=metrics.get(primary),
        metrics=metrics,
        cost_per_1k_usd=None if task is None or not completions else task / len(completions) * 1000,
        task_cost_usd=task,
        spent_usd=_sum_cost([c for c in completions if not c.cached]),
        judge_cost_usd=judge,
        total_cost_usd=None if task is None or judge is None else task + judge,
        cached_requests=sum(1 for c in completions if c.cached),
        confusion=_confusion(results),
        **_latency_and_tokens(completions),
    )


def _confusion(results: Sequence[ResultRecord]) -> dict[str, dict[str, int]] | None:
    pairs = [
        (str(s.details["expected"]), s.details.get("predicted"))
        for r in results
        if (s := r.scores.get("label")) is not None and "expected" in s.details
    ]
    return confusion_matrix(pairs) if pairs else None


def _sum_cost(completions: Sequence[Completion]) -> float | None:
    """None when any call's cost is unknown: a partial sum would understate it."""
    if any(c.cost_usd is None for c in completions):
        return None
    return sum(c.cost_usd or 0.0 for c in completions)


def _judge_cost(results: Sequence[ResultRecord]) -> float | None:
    """Sum of the judge's cost over every judgement; None when any is unknown."""
    total = 0.0
    for r in results:
        judge = r.scores.get(JUDGE_SCORE)
        if judge is None or "cost_usd" not in judge.details:
            continue
        cost = judge.details["cost_usd"]
        if cost is None:
            return None
        total += float(cost)
    return total


def _latency_and_tokens(completions: Sequence[Completion]) -> dict[str, float | None]:
    latencies = [c.latency_s * 1000 for c in completions]
    out_tokens = [c.output_tokens for c in completions if c.output_tokens is not None]
    in_tokens = [c.input_tokens for c in completions if c.input_tokens is not None]
    timed = [c for c in completions if c.output_tokens is not None and c.latency_s > 0]
    total_time = sum(c.latency_s for c in timed)
    return {
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "output_tokens_per_s": (
            sum(c.output_tokens or 0 for c in timed) / total_time if total_time else None
        ),
        "input_tokens_per_request": sum(in_tokens) / len(in_tokens) if in_tokens else None,
        "output_tokens_per_request": sum(out_tokens) / len(out_tokens) if out_tokens else None,
    }


def self_hosting_cost_per_1k(
    summary: VariantSummary, gpu_cost_per_hour: float, parallel: int
) -> float | None:
    """Measured mean latency with ``parallel`` requests in flight, priced by the hour."""
    if summary.latency_mean_ms is None:
        return None
    seconds_per_request = summary.latency_mean_ms / 1000 / max(1, parallel)
    return seconds_per_request * 1000 / 3600 * gpu_cost_per_hour
