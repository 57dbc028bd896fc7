"""Statistics a team can decide from: means with bootstrap intervals, paired tests, Pareto fronts.

Every random step uses a seeded ``numpy.random.Generator``, so the same inputs and seed give
the same numbers. Unscored and error scores are excluded from means and counted next to them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from assay.scoring.score import Score

Floats = NDArray[np.float64]

BOOTSTRAP_RESAMPLES = 2000
PERMUTATION_RESAMPLES = 10000
EXACT_PERMUTATION_MAX_N = 16
_CHUNK_CELLS = 2_000_000  # bounds bootstrap memory: resamples x n per chunk
_TIE_EPS = 1e-12


class Aggregate(BaseModel):
    """Mean of the scored items with a bootstrap percentile interval.

    ``mean``/``std`` are None when nothing was scored; the interval is None with fewer than two
    scored items (one value says nothing about spread). ``std`` is the sample (ddof=1) value.
    """

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n_scored: int
    n_unscored: int
    n_errors: int
    std: float | None
    confidence: float = 0.95

    @property
    def n_total(self) -> int:
        return self.n_scored + self.n_unscored + self.n_errors


def _bootstrap_means(values: Floats, resamples: int, rng: np.random.Generator) -> Floats:
    n = len(values)
    rows = max(1, _CHUNK_CELLS // n)
    means: list[Floats] = []
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        means.append(values[idx].mean(axis=1))
    return np.concatenate(means)


def bootstrap_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean; None with fewer than two values.

    The interval is widened by float rounding only, so that it always contains the mean.
    """
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < 2:
        return None
    means = _bootstrap_means(arr, resamples, np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    mean = float(arr.mean())
    return min(float(low), mean), max(float(high), mean)


def aggregate(
    scores: Sequence[Score],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
) -> Aggregate:
    """Mean, interval and counts over scores; unscored and error items are only counted."""
    values = [s.value for s in scores if s.is_scored and s.value is not None]
    n_errors = sum(1 for s in scores if s.status == "error")
    n_unscored = len(scores) - len(values) - n_errors
    return aggregate_values(values, n_unscored, n_errors, seed, resamples, confidence)


def aggregate_values(
    values: Sequence[float],
    n_unscored: int,
    n_errors: int,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
) -> Aggregate:
    """``aggregate`` from the scored values (in item order) and the counts of the others.

    For callers that fold scores into numbers as they stream and keep no Score objects.
    """
    arr = np.asarray(values, dtype=np.float64)
    ci = bootstrap_ci(values, confidence, resamples, seed)
    return Aggregate(
        mean=float(arr.mean()) if len(arr) else None,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        n_scored=len(values),
        n_unscored=n_unscored,
        n_errors=n_errors,
        std=float(arr.std(ddof=1)) if len(arr) >= 2 else None,
        confidence=confidence,
    )


# --- paired comparison --------------------------------------------------------------------


class PairedComparison(BaseModel):
    """B against A on the same items (``diff = mean_b - mean_a``), one method for every figure.

    The two-sided paired sign-flip permutation test (exact for n <= 16, else 10,000 seeded random
    flips) gives ``p_value``; the interval is the same test inverted: every shift d whose test of
    ``diffs - d`` is not rejected at ``alpha`` (the signs are drawn once, so the interval and the
    p-value cannot disagree). ``significant`` is ``p_value < alpha``, which holds exactly when the
    interval excludes 0. All-zero differences give p = 1. ``samples_needed`` is a rough number of
    paired items to detect the observed difference at 80% power (normal approximation from the
    sd of the differences; never below the smallest n at which the exact test can reach alpha);
    None when the difference is 0.
    """

    n: int
    n_dropped: int = 0
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    samples_needed: int | None
    sd: float | None = None
    alpha: float = 0.05
    method: str = "paired sign-flip permutation test, inverted for the interval"


def _is_number(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _pairs(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[Floats, Floats]:
    if len(a) != len(b):
        raise ValueError(f"paired_compare needs equal lengths, got {len(a)} and {len(b)}")
    kept = [(x, y) for x, y in zip(a, b, strict=True) if _is_number(x) and _is_number(y)]
    xs = np.asarray([x for x, _ in kept], dtype=np.float64)
    ys = np.asarray([y for _, y in kept], dtype=np.float64)
    return xs, ys


def sign_matrices(n: int, seed: int = 0) -> Iterator[Floats]:
    """The sign vectors of the sign-flip tests, in chunks of rows: all 2**n of them for
    n <= EXACT_PERMUTATION_MAX_N (the identity included), else PERMUTATION_RESAMPLES draws."""
    if n <= EXACT_PERMUTATION_MAX_N:  # row i holds i's bits, first column most significant
        bits = (np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)) & 1
        yield 1.0 - 2.0 * bits.astype(np.float64)
        return
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // n)
    for start in range(0, PERMUTATION_RESAMPLES, rows):
        size = (min(rows, PERMUTATION_RESAMPLES - start), n)
        yield rng.choice(np.array([1.0, -1.0]), size=size)


class SignFlipTest:
    """The sign-flip test of "the differences are symmetric about d", for any shift d.

    With S the matrix of sign vectors, the statistic of ``diffs - d`` is |S·diffs - d·S·1| / n,
    so one matrix product serves every d: the p-value and its inverted interval agree exactly.
    """

    def __init__(self, diffs: Floats, seed: int = 0) -> None:
        self.diffs = diffs
        self.exact = len(diffs) <= EXACT_PERMUTATION_MAX_N
        self._flipped, self._signs_sum = self._flips(diffs, seed)

    def _flips(self, diffs: Floats, seed: int) -> tuple[Floats, Floats]:
        flipped, sums = [], []
        for signs in sign_matrices(len(diffs), seed):
            flipped.append(signs @ diffs)
            sums.append(signs.sum(axis=1))
        return np.concatenate(flipped), np.concatenate(sums)

    def p_value(self, shift: float = 0.0) -> float:
        centred = self.diffs - shift
        if np.all(np.abs(centred) <= _TIE_EPS):
            return 1.0
        observed = abs(float(centred.sum()))
        stats = np.abs(self._flipped - shift * self._signs_sum)
        hits = int(np.sum(stats >= observed - _TIE_EPS * len(centred)))
        if self.exact:
            return hits / len(stats)
        return (hits + 1) / (len(stats) + 1)

    def interval(self, alpha: float) -> tuple[float, float]:
        """The shifts not rejected at ``alpha``, found by bisection from the mean outwards;
        a side the data cannot bound (too few items) ends at the far edge of the data."""
        centre = float(self.diffs.mean())
        if float(np.ptp(self.diffs)) <= _TIE_EPS:  # no spread: only the value itself is accepted
            return self._agree_at_zero(centre, centre, alpha)
        span = max(float(np.ptp(self.diffs)), abs(centre))
        low = self._edge(centre, centre - 2 * span, alpha)
        high = self._edge(centre, centre + 2 * span, alpha)
        return self._agree_at_zero(low, high, alpha)

    def _agree_at_zero(self, low: float, high: float, alpha: float) -> tuple[float, float]:
        """With ties (0/1 scores) the p-value steps at 0: the interval is the test's verdict
        at 0 exactly, so "excludes 0" and "p < alpha" are one statement."""
        if self.p_value(0.0) >= alpha:
            return min(low, 0.0), max(high, 0.0)
        if low <= 0.0 <= high:
            return (_TIE_EPS, high) if self.diffs.mean() > 0 else (low, -_TIE_EPS)
        return low, high

    def _edge(self, inside: float, outside: float, alpha: float) -> float:
        if self.p_value(outside) >= alpha:
            return outside
        for _ in range(40):
            middle = (inside + outside) / 2
            if self.p_value(middle) >= alpha:
                inside = middle
            else:
                outside = middle
        return inside


class MaxSignFlipTest:
    """One-sided test of "no candidate beats the incumbent" for k candidates on the same n items.

    ``diffs`` is k x n (candidate minus incumbent, per item). The statistic is the largest
    candidate mean. Each sign vector flips an item's differences for every candidate at once
    (the item is the exchangeable unit), so the null distribution of the maximum accounts for
    how many candidates were compared: its 1 - alpha quantile is the bar the best must reach.
    The sign vectors are the ones ``SignFlipTest`` uses (``sign_matrices``).
    """

    def __init__(self, diffs: Floats, seed: int = 0) -> None:
        self.diffs = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
        n = self.diffs.shape[1]
        # Rows where no candidate differs add 0 to every flipped sum: leaving them out changes
        # no value and lets more looks use every sign vector (exact) rather than draws.
        moving = self.diffs[:, np.any(np.abs(self.diffs) > _TIE_EPS, axis=0)]
        self.exact = moving.shape[1] <= EXACT_PERMUTATION_MAX_N
        flips = sign_matrices(moving.shape[1], seed)
        null = [(signs @ moving.T).max(axis=1) / max(n, 1) for signs in flips]
        self._null = np.round(np.concatenate(null), 12)  # sums of 0/1 scores tie exactly

    @property
    def observed(self) -> float:
        return float(self.diffs.mean(axis=1).max())

    def p_value(self) -> float:
        """P(max >= observed) under sign flips; exact counts include the identity, random
        draws add it (the (hits + 1) / (N + 1) rule), so p is never 0."""
        if np.all(np.abs(self.diffs) <= _TIE_EPS):
            return 1.0
        hits = int(np.sum(self._null >= round(self.observed, 12)))
        if self.exact:
            return hits / len(self._null)
        return (hits + 1) / (len(self._null) + 1)

    def bar(self, alpha: float) -> float | None:
        """The smallest best-candidate mean with p <= alpha; None when these items cannot
        reach alpha at all (too few of them, or too few that differ)."""
        values, counts = np.unique(self._null, return_counts=True)
        at_or_above = np.cumsum(counts[::-1])[::-1]  # how many flips reach each value
        allowed = math.floor(alpha * len(self._null) + 1e-9)
        if not self.exact:
            allowed = math.floor(alpha * (len(self._null) + 1) + 1e-9) - 1
        fits = at_or_above <= allowed
        if fits.any():
            return float(values[int(fits.argmax())])
        if self.exact or allowed < 0:
            return None
        return float(np.nextafter(values[-1], np.inf))  # above every flip: p = 1 / (N + 1)


def sign_flip_p_value(diffs: Sequence[float], seed: int = 0) -> float:
    """Two-sided paired permutation test of mean(diffs) == 0. All-zero differences give 1."""
    arr = np.asarray(diffs, dtype=np.float64)
    if len(arr) == 0:
        return 1.0
    return SignFlipTest(arr, seed).p_value()


def min_n_for_exact_test(alpha: float) -> int:
    """Smallest n at which the exact sign-flip test can give p < alpha (its p >= 2 / 2**n)."""
    return math.floor(1.0 - math.log2(alpha)) + 1


def samples_needed(diff: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Rough number of paired items to detect ``diff`` given the sd of the differences."""
    if diff == 0:
        return None
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    normal_n = math.ceil((z * sd / abs(diff)) ** 2)
    return max(normal_n, min_n_for_exact_test(alpha))


def paired_compare(
    a: Sequence[float | None],
    b: Sequence[float | None],
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedComparison:
    """Compare B with A item by item (by position); items missing in either are dropped."""
    xs, ys = _pairs(a, b)
    n = len(xs)
    if n == 0:
        return PairedComparison(
            n=0, n_dropped=len(a), mean_a=None, mean_b=None, diff=None, ci_low=None,
            ci_high=None, p_value=None, significant=False, samples_needed=None, alpha=alpha,
        )  # fmt: skip
    diffs = ys - xs
    diff = float(diffs.mean())
    test = SignFlipTest(diffs, seed)
    p_value = test.p_value()
    low, high = test.interval(alpha) if n >= 2 else (None, None)
    sd = float(diffs.std(ddof=1)) if n >= 2 else 0.0
    return PairedComparison(
        n=n,
        n_dropped=len(a) - n,
        mean_a=float(xs.mean()),
        mean_b=float(ys.mean()),
        diff=diff,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        significant=p_value < alpha,
        samples_needed=samples_needed(diff, sd, alpha) if abs(diff) > _TIE_EPS else None,
        sd=sd,
        alpha=alpha,
    )


# --- percentiles and Pareto ---------------------------------------------------------------


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation) of the known values; None if none."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    known = [v for v in values if _is_number(v)]
    if not known:
        return None
    return float(np.percentile(np.asarray(known, dtype=np.float64), q))


def _dominates(p: tuple[float, float], q: tuple[float, float]) -> bool:
    """p is at least as good as q on both axes and better on one (quality up, cost down)."""
    return p[0] >= q[0] and p[1] <= q[1] and (p[0] > q[0] or p[1] < q[1])


def pareto_front(points: Sequence[tuple[str, float | None, float | None]]) -> list[str]:
    """Names of the points no other point dominates, maximising quality and minimising cost.

    Points are ``(name, quality, cost)``. Points with an unknown (None or NaN) quality or cost
    are left out. Exact ties are all kept. The result is ordered by cost, cheapest first
    (then by quality, best first).
    """
    known = [
        (name, float(quality), float(cost))
        for name, quality, cost in points
        if quality is not None and cost is not None and _is_number(quality) and _is_number(cost)
    ]
    front = [
        (name, quality, cost)
        for name, quality, cost in known
        if not any(_dominates((q2, c2), (quality, cost)) for _, q2, c2 in known)
    ]
    front.sort(key=lambda point: (point[2], -point[1]))
    return [name for name, _, _ in front]
