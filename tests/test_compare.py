"""The recommendation at a margin: the cheapest variant shown non-inferior to the best one."""

from __future__ import annotations

from assay.analysis.compare import DecisionSetup, decide
from assay.analysis.decisions import DecisionConfig, ItemKey
from assay.analysis.summary import VariantSummary
from assay.scoring.stats import Aggregate


def summary(name: str, values: list[float], cost: float | None) -> VariantSummary:
    agg = Aggregate(
        mean=sum(values) / len(values),
        ci_low=None,
        ci_high=None,
        n_scored=len(values),
        n_unscored=0,
        n_errors=0,
        std=0.3,
    )
    return VariantSummary(
        variant=name,
        model=f"compat/{name}",
        n_requests=len(values),
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


def recommend(variants: dict[str, tuple[list[float], float | None]], margin: float) -> str:
    values: dict[str, dict[ItemKey, float | None]] = {
        name: {(str(i), 0): v for i, v in enumerate(scores)}
        for name, (scores, _) in variants.items()
    }
    summaries = [summary(name, scores, cost) for name, (scores, cost) in variants.items()]
    setup = DecisionSetup(config=DecisionConfig(margin=margin), n_samples=300)
    return decide(summaries, values, setup).recommendation


SAME = [1.0] * 270 + [0.0] * 30
ONE_WORSE = [0.0, *SAME[1:]]


def test_a_cheaper_variant_shown_within_the_margin_is_recommended() -> None:
    text = recommend({"big": (SAME, 2.0), "small": (ONE_WORSE, 0.5)}, 0.05)
    assert text.startswith("Recommended: small, shown non-inferior to big at a margin of 0.05")
    assert "at 25% of the cost" in text


def test_a_cheaper_variant_worse_by_more_than_the_margin_is_not_recommended() -> None:
    worse = [1.0] * 150 + [0.0] * 150
    text = recommend({"big": (SAME, 2.0), "small": (worse, 0.5)}, 0.05)
    assert text.startswith("Recommended: big (the highest score); no other variant")
    assert "small is inferior to big by more than 0.05" in text


def test_unknown_best_cost_keeps_the_best_score() -> None:
    text = recommend({"big": (SAME, None), "small": (ONE_WORSE, 0.5)}, 0.05)
    assert text.startswith("Recommended: big (the highest score; nothing shown within")


def test_free_local_model_within_the_margin_wins_at_no_api_cost() -> None:
    text = recommend({"hosted": (SAME, 1.0), "local": (ONE_WORSE, 0.0)}, 0.05)
    assert text.startswith("Recommended: local, shown non-inferior to hosted")
    assert "at no API cost" in text
