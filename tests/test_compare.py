"""The recommendation: the cheapest variant not significantly worse than the best one."""

from __future__ import annotations

from assay.analysis.compare import PairRow, recommend
from assay.analysis.summary import VariantSummary
from assay.scoring.stats import Aggregate, PairedComparison


def summary(name: str, mean: float, cost: float | None) -> VariantSummary:
    agg = Aggregate(
        mean=mean,
        ci_low=mean - 0.1,
        ci_high=mean + 0.1,
        n_scored=50,
        n_unscored=0,
        n_errors=0,
        std=0.3,
    )
    return VariantSummary(
        variant=name,
        model=f"compat/{name}",
        n_requests=50,
        n_errors=0,
        score=agg,
        cost_per_1k_usd=cost,
        task_cost_usd=None,
        spent_usd=None,
        judge_cost_usd=0.0,
        total_cost_usd=None,
        latency_p50_ms=100,
        latency_p95_ms=200,
        latency_mean_ms=120,
        output_tokens_per_s=50,
        input_tokens_per_request=40,
        output_tokens_per_request=3,
    )


def pair(a: str, b: str, diff: float, significant: bool) -> PairRow:
    c = PairedComparison(
        n=50,
        mean_a=0.9,
        mean_b=0.9 + diff,
        diff=diff,
        ci_low=diff - 0.05,
        ci_high=diff + 0.05,
        p_value=0.01 if significant else 0.4,
        significant=significant,
        samples_needed=None,
    )
    return PairRow(a=a, b=b, comparison=c)


def test_a_cheaper_variant_within_noise_is_recommended() -> None:
    variants = [summary("big", 0.90, 2.0), summary("small", 0.88, 0.5)]
    text = recommend(variants, [pair("big", "small", -0.02, significant=False)])
    assert text.startswith("Recommended: small, not significantly worse than big at 25%")


def test_a_significantly_worse_cheap_variant_is_not_recommended() -> None:
    variants = [summary("big", 0.90, 2.0), summary("small", 0.60, 0.5)]
    text = recommend(variants, [pair("big", "small", -0.30, significant=True)])
    assert text.startswith("Recommended: big.")
    assert "small is significantly worse" in text


def test_unknown_best_cost_keeps_the_best_score() -> None:
    variants = [summary("big", 0.90, None), summary("small", 0.89, 0.5)]
    text = recommend(variants, [pair("big", "small", -0.01, significant=False)])
    assert text.startswith("Recommended: big (highest score; cost not comparable)")


def test_free_local_model_within_noise_wins_at_no_api_cost() -> None:
    variants = [summary("hosted", 0.90, 1.0), summary("local", 0.89, 0.0)]
    text = recommend(variants, [pair("hosted", "local", -0.01, significant=False)])
    assert text.startswith("Recommended: local, not significantly worse than hosted at no API")
