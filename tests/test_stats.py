"""Statistics on hand-made cases: counts, seeded intervals, paired tests, Pareto fronts."""

from __future__ import annotations

import math

import pytest

from assay.scoring import Score, aggregate, paired_compare, pareto_front, percentile
from assay.scoring.stats import (
    bootstrap_ci,
    min_n_for_exact_test,
    samples_needed,
    sign_flip_p_value,
)


def scores(*values: float | None, errors: int = 0) -> list[Score]:
    out = [Score.scored(v) if v is not None else Score.unscored("unparsable") for v in values]
    return out + [Score.error("timeout")] * errors


def test_aggregate_excludes_and_counts_unscored_and_errors() -> None:
    agg = aggregate(scores(1.0, 0.0, 1.0, 1.0, None, None, errors=3))
    assert agg.mean == pytest.approx(0.75)
    assert agg.n_scored == 4 and agg.n_unscored == 2 and agg.n_errors == 3
    assert agg.n_total == 9
    assert agg.std == pytest.approx(0.5)


def test_aggregate_with_nothing_scored_has_no_mean() -> None:
    agg = aggregate(scores(None, errors=2))
    assert agg.mean is None and agg.ci_low is None and agg.ci_high is None and agg.std is None
    assert agg.n_unscored == 1 and agg.n_errors == 2
    assert aggregate([]).mean is None


def test_aggregate_single_value_has_no_interval() -> None:
    agg = aggregate(scores(0.6))
    assert agg.mean == 0.6 and agg.ci_low is None and agg.std is None


def test_ci_contains_mean_and_is_deterministic() -> None:
    values = [0.1, 0.9, 0.4, 0.7, 0.3, 1.0, 0.0, 0.55, 0.8, 0.65]
    first = aggregate(scores(*values), seed=7)
    again = aggregate(scores(*values), seed=7)
    other = aggregate(scores(*values), seed=8)
    assert first == again
    assert first.ci_low is not None and first.ci_high is not None and first.mean is not None
    assert first.ci_low <= first.mean <= first.ci_high
    assert 0.0 <= first.ci_low < first.ci_high <= 1.0
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_ci_of_constant_values_is_the_value() -> None:
    agg = aggregate(scores(0.7, 0.7, 0.7))
    assert agg.ci_low == agg.mean == agg.ci_high == pytest.approx(0.7)
    assert agg.ci_low is not None and agg.mean is not None and agg.ci_low <= agg.mean


def test_ci_narrows_with_more_data() -> None:
    small = bootstrap_ci([0.0, 1.0] * 5)
    large = bootstrap_ci([0.0, 1.0] * 500)
    assert small is not None and large is not None
    assert large[1] - large[0] < small[1] - small[0]
    assert large[0] < 0.5 < large[1]


# --- paired comparison --------------------------------------------------------------------


def test_clear_difference_is_significant() -> None:
    a = [0.0, 0.1, 0.2, 0.0, 0.3, 0.1, 0.2, 0.0, 0.1, 0.2] * 3
    b = [0.9, 1.0, 0.8, 0.7, 1.0, 0.9, 0.8, 1.0, 0.9, 0.7] * 3
    result = paired_compare(a, b, seed=1)
    assert result.n == 30
    assert result.diff == pytest.approx(sum(b) / 30 - sum(a) / 30)
    assert result.mean_a == pytest.approx(sum(a) / 30)
    assert result.p_value is not None and result.p_value < 0.001
    assert result.ci_low is not None and result.ci_low > 0
    assert result.significant
    assert result.samples_needed is not None and result.samples_needed <= 30


def test_identical_inputs_are_not_significant() -> None:
    a = [0.2, 0.5, 0.9, 1.0, 0.0, 0.3]
    result = paired_compare(a, list(a))
    assert result.diff == 0.0
    assert result.p_value == 1.0
    assert not result.significant
    assert result.samples_needed is None
    assert result.ci_low == result.ci_high == 0.0


def test_paired_compare_drops_missing_items_by_position() -> None:
    a = [1.0, None, 0.0, 0.5, math.nan]
    b = [1.0, 1.0, None, 1.0, 0.0]
    result = paired_compare(a, b)
    assert result.n == 2 and result.n_dropped == 3
    assert result.mean_a == pytest.approx(0.75) and result.mean_b == pytest.approx(1.0)


def test_paired_compare_nothing_in_common() -> None:
    result = paired_compare([None, 1.0], [0.0, None])
    assert result.n == 0 and result.diff is None and result.p_value is None
    assert not result.significant


def test_paired_compare_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError):
        paired_compare([1.0], [1.0, 0.0])


def test_small_n_cannot_be_significant() -> None:
    # Exact sign-flip test on 5 items: the smallest possible p is 2/32.
    result = paired_compare([0.0] * 5, [1.0] * 5)
    assert result.p_value == pytest.approx(2 / 32)
    assert not result.significant
    assert result.samples_needed == min_n_for_exact_test(0.05) == 6
    six = paired_compare([0.0] * 6, [1.0] * 6)
    assert six.p_value == pytest.approx(2 / 64) and six.significant


def test_paired_compare_is_deterministic_with_a_seed() -> None:
    a = [i % 3 / 2 for i in range(40)]
    b = [min(1.0, x + (0.25 if i % 2 else -0.1)) for i, x in enumerate(a)]
    assert paired_compare(a, b, seed=3) == paired_compare(a, b, seed=3)


def test_sign_flip_p_value_exact_and_random_agree_roughly() -> None:
    diffs = [0.3, -0.1, 0.2, 0.4, 0.0, 0.1, -0.2, 0.3, 0.2, 0.1, 0.2, 0.3]
    exact = sign_flip_p_value(diffs)
    sampled = sign_flip_p_value(diffs * 2)  # n = 24 uses random flips
    assert 0.0 < exact < 0.05
    assert 0.0 < sampled < exact
    assert sign_flip_p_value([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_p_value([]) == 1.0


def test_samples_needed_grows_as_the_effect_shrinks() -> None:
    big = samples_needed(0.3, sd=0.5)
    small = samples_needed(0.05, sd=0.5)
    assert big is not None and small is not None and small > big
    # (1.96 + 0.8416)^2 * (0.5 / 0.05)^2 ~= 785
    assert small == pytest.approx(785, abs=2)
    assert samples_needed(0.0, sd=0.5) is None


# --- percentile ---------------------------------------------------------------------------


def test_percentile() -> None:
    latencies = [0.1, 0.2, 0.3, 0.4, 10.0]
    assert percentile(latencies, 50) == pytest.approx(0.3)
    assert percentile(latencies, 100) == 10.0
    assert percentile([1.0, None, 3.0], 50) == pytest.approx(2.0)
    assert percentile([], 95) is None
    assert percentile([None], 95) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# --- Pareto -------------------------------------------------------------------------------


def test_pareto_front_hand_example() -> None:
    points: list[tuple[str, float | None, float | None]] = [
        ("cheap", 0.60, 0.10),
        ("mid", 0.80, 1.00),
        ("dominated", 0.70, 2.00),  # worse and dearer than "mid"
        ("best", 0.90, 5.00),
        ("overpriced", 0.90, 6.00),  # same quality as "best", dearer
        ("free-but-bad", 0.20, 0.00),
        ("unknown-cost", 0.99, None),
        ("unscored", None, 0.01),
    ]
    assert pareto_front(points) == ["free-but-bad", "cheap", "mid", "best"]


def test_pareto_front_keeps_exact_ties() -> None:
    points: list[tuple[str, float | None, float | None]] = [
        ("a", 0.8, 1.0),
        ("b", 0.8, 1.0),
        ("c", 0.7, 1.0),
        ("nan", math.nan, 0.0),
    ]
    assert pareto_front(points) == ["a", "b"]
    assert pareto_front([]) == []
