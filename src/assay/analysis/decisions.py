"""Decisions at a margin: is each variant non-inferior, inferior or superior to a reference?

One method per run gives every figure of a comparison (difference, interval, p-value, verdict):
- a fixed run: the paired sign-flip permutation test, its interval found by inverting the test
  (``scoring.stats.paired_compare``);
- an adaptive run (looked at after every round): a confidence sequence
  (``scoring.sequential``), with the anytime-valid p-value it implies.

Comparisons are per sample (a sample's repeats are averaged: they are not independent items).
Several comparisons are made at once, so each is made at ``alpha / k`` (Bonferroni): k is the
number of variants compared with a stated baseline, or every pair when the reference is the
best variant (the best is itself chosen from the data).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from assay.scoring.sequential import confidence_sequence
from assay.scoring.stats import PairedComparison, paired_compare

Outcome = Literal["reference", "superior", "non-inferior", "inferior", "not settled"]
ItemKey = tuple[str, int]
SampleValues = dict[str, float]  # sample id -> the mean of its repeats' primary values

FIXED_METHOD = "paired sign-flip permutation test (interval by inverting the test)"
SEQUENTIAL_METHOD = "confidence sequence (empirical-Bernstein for [0, 1] scores), anytime-valid"


class DecisionConfig(BaseModel):
    """What the comparison must decide: every variant against a reference at a tolerance.

    ``margin`` is the loss the team accepts, in the primary metric's units (None: no tolerance
    stated, only differences are tested). ``baseline`` is the reference label (None: the best
    variant). ``adaptive`` evaluates in rounds and stops spending on settled variants.
    """

    model_config = ConfigDict(frozen=True)

    margin: float | None = Field(default=None, ge=0)
    baseline: str | None = None
    adaptive: bool = False
    alpha: float = Field(default=0.05, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _adaptive_needs_margin(self) -> DecisionConfig:
        if self.adaptive and self.margin is None:
            raise ValueError("--adaptive needs --margin: the loss you accept decides when to stop")
        return self


class VariantDecision(BaseModel):
    """One variant against the reference (``comparison.diff`` = variant - reference).

    ``against`` names the variant it was judged against when that is not the run's reference:
    an adaptive run stopped it against the best variant *of that round*, and keeps that verdict.
    """

    variant: str
    outcome: Outcome
    against: str | None = None
    comparison: PairedComparison | None = None
    samples: int = 0  # samples this variant was scored on
    stopped_early: bool = False  # adaptive: no more samples were spent on it once settled
    more_samples: int | None = None  # further paired samples likely to settle it
    more_calls: int | None = None
    more_cost_usd: float | None = None
    supported_margin: float | None = None  # the smallest margin the data show it within


class AdaptiveSpend(BaseModel):
    """What an adaptive run spent on its variants against what running them all would."""

    calls: int  # task calls made
    full_calls: int  # task calls of the whole dataset for every variant
    cost_usd: float | None  # task and judge cost of the calls made
    full_cost_usd: float | None  # the same per-sample costs over the whole dataset


class Decisions(BaseModel):
    reference: str
    baseline: bool  # the reference is the user's --baseline (else: the best variant)
    margin: float | None
    alpha: float
    comparisons: int  # k of the Bonferroni correction
    method: str
    variants: list[VariantDecision]
    adaptive: AdaptiveSpend | None = None


def per_sample(values: Mapping[ItemKey, float | None]) -> SampleValues:
    """Each sample's mean over its scored repeats."""
    sums: dict[str, list[float]] = {}
    for (sample, _repeat), value in values.items():
        if value is not None and not math.isnan(value):
            sums.setdefault(sample, []).append(value)
    return {sample: sum(v) / len(v) for sample, v in sums.items()}


def seeded_order(sample_ids: Iterable[str], seed: int) -> list[str]:
    """A seeded random order of samples that does not depend on the file's order."""

    def rank(sample_id: str) -> str:
        return hashlib.sha256(f"{seed}\x00{sample_id}".encode()).hexdigest()

    return sorted(sample_ids, key=rank)


def outcome_of(c: PairedComparison, margin: float | None) -> Outcome:
    """The verdict of ``variant - reference`` from its interval; no margin means 0."""
    if c.ci_low is None or c.ci_high is None:
        return "not settled"
    m = margin or 0.0
    if c.ci_low > 0.0:
        return "superior"
    if margin is not None and c.ci_low > -m:
        return "non-inferior"
    if c.ci_high < -m:
        return "inferior"
    return "not settled"


def number_of_comparisons(n_variants: int, baseline: bool) -> int:
    if n_variants < 2:
        return 1
    return n_variants - 1 if baseline else n_variants * (n_variants - 1) // 2


def compare_fixed(
    ref: SampleValues, other: SampleValues, alpha: float, seed: int
) -> PairedComparison:
    keys = sorted(set(ref) & set(other))
    return paired_compare([ref[k] for k in keys], [other[k] for k in keys], seed=seed, alpha=alpha)


def compare_sequential(
    ref: SampleValues, other: SampleValues, alpha: float, seed: int, horizon: int
) -> PairedComparison:
    """The confidence sequence of ``other - ref`` over the shared samples, in seeded order."""
    keys = seeded_order(set(ref) & set(other), seed)
    a = np.asarray([ref[k] for k in keys], dtype=np.float64)
    b = np.asarray([other[k] for k in keys], dtype=np.float64)
    diffs = b - a
    bounded = bool(np.all((a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)))
    low, high = confidence_sequence(diffs, alpha, bounded, horizon)
    n = len(diffs)
    finite = n > 0 and math.isfinite(low) and math.isfinite(high)
    return PairedComparison(
        n=n,
        mean_a=float(a.mean()) if n else None,
        mean_b=float(b.mean()) if n else None,
        diff=float(diffs.mean()) if n else None,
        ci_low=low if finite else None,
        ci_high=high if finite else None,
        p_value=_anytime_p(diffs, bounded, horizon) if n else None,
        significant=finite and (low > 0 or high < 0),
        samples_needed=None,
        sd=float(diffs.std(ddof=1)) if n >= 2 else None,
        alpha=alpha,
        method=SEQUENTIAL_METHOD,
    )


def _anytime_p(diffs: np.ndarray, bounded: bool, horizon: int) -> float:
    """The smallest level at which the sequence excludes 0 (bisection on a log scale)."""

    def excludes_zero(level: float) -> bool:
        low, high = confidence_sequence(diffs, level, bounded, horizon)
        return low > 0 or high < 0

    if not excludes_zero(0.49):
        return 1.0
    inside, outside = math.log(1e-12), math.log(0.49)  # inside: excluded at exp(outside)
    if excludes_zero(1e-12):
        return 1e-12
    for _ in range(30):
        middle = (inside + outside) / 2
        if excludes_zero(math.exp(middle)):
            outside = middle
        else:
            inside = middle
    return math.exp(outside)


def more_samples_to_settle(c: PairedComparison, margin: float | None) -> int | None:
    """Further paired samples likely (80% power) to move the interval off the margin; None
    when the difference sits on the margin (no sample size settles it).

    The interval's half-width on the side facing the margin is taken to shrink as 1/sqrt(n)
    (for a confidence sequence a slight under-estimate: its width also grows with log n)."""
    if c.diff is None or c.sd is None or c.ci_low is None or c.ci_high is None or c.n < 2:
        return None
    gap = c.diff + (margin or 0.0)  # > 0: aiming for non-inferiority, < 0: for inferiority
    if abs(gap) < 1e-9:
        return None
    half = c.diff - c.ci_low if gap > 0 else c.ci_high - c.diff
    power = NormalDist().inv_cdf(0.8) * c.sd
    wanted = math.ceil(((half * math.sqrt(c.n) + power) / abs(gap)) ** 2)
    return max(wanted - c.n, 1)


def supported_margin(c: PairedComparison) -> float | None:
    """The smallest margin at which these data already show non-inferiority."""
    return None if c.ci_low is None else max(0.0, -c.ci_low)


def reference_of(means: Mapping[str, float | None], baseline: str | None) -> str | None:
    if baseline is not None:
        return baseline
    scored = {k: v for k, v in means.items() if v is not None}
    return max(scored, key=lambda k: scored[k]) if scored else None


class DecisionInputs(BaseModel):
    """What ``decide_all`` needs besides the values: per-variant means and costs."""

    model_config = ConfigDict(frozen=True)

    means: dict[str, float | None]
    cost_per_sample_usd: dict[str, float | None]  # one sample's calls (repeats, judge) in $
    calls_per_sample: int  # task calls one sample costs one variant (its repeats)
    samples_left: int  # rows of the dataset not yet used by the variants compared
    stopped_early: frozenset[str] = frozenset()
    attempted: dict[str, int] = Field(default_factory=dict)  # samples run, scored or not
    horizon: int = 1
    seed: int = 0
    n_variants: int | None = None  # the run's variants (the correction's k counts them all)


def decide_all(
    values: Mapping[str, SampleValues], config: DecisionConfig, inputs: DecisionInputs
) -> Decisions | None:
    """Every variant's verdict against the reference; None when nothing was scored."""
    reference = reference_of(inputs.means, config.baseline)
    if reference is None or reference not in values:
        return None
    k = number_of_comparisons(inputs.n_variants or len(values), config.baseline is not None)
    alpha = config.alpha / k
    rows = [
        _variant_decision(variant, reference, values, config, inputs, alpha) for variant in values
    ]
    return Decisions(
        reference=reference,
        baseline=config.baseline is not None,
        margin=config.margin,
        alpha=config.alpha,
        comparisons=k,
        method=SEQUENTIAL_METHOD if config.adaptive else FIXED_METHOD,
        variants=rows,
    )


def _variant_decision(
    variant: str,
    reference: str,
    values: Mapping[str, SampleValues],
    config: DecisionConfig,
    inputs: DecisionInputs,
    alpha: float,
) -> VariantDecision:
    samples = inputs.attempted.get(variant, len(values[variant]))
    stopped = variant in inputs.stopped_early
    if variant == reference:
        return VariantDecision(variant=variant, outcome="reference", samples=samples)
    if config.adaptive:
        c = compare_sequential(
            values[reference], values[variant], alpha, inputs.seed, inputs.horizon
        )
    else:
        c = compare_fixed(values[reference], values[variant], alpha, inputs.seed)
    outcome = outcome_of(c, config.margin)
    decision = VariantDecision(
        variant=variant,
        outcome=outcome,
        comparison=c,
        samples=samples,
        stopped_early=stopped,
        supported_margin=supported_margin(c),
    )
    if outcome == "not settled":
        decision = _with_cost_to_settle(decision, c, config, inputs, reference)
    return decision


def _with_cost_to_settle(
    decision: VariantDecision,
    c: PairedComparison,
    config: DecisionConfig,
    inputs: DecisionInputs,
    reference: str,
) -> VariantDecision:
    more = more_samples_to_settle(c, config.margin)
    if more is None:
        return decision
    costs = [inputs.cost_per_sample_usd.get(v) for v in (decision.variant, reference)]
    dollars = None if any(x is None for x in costs) else more * sum(x or 0.0 for x in costs)
    return decision.model_copy(
        update={
            "more_samples": more,
            "more_calls": more * inputs.calls_per_sample * 2,
            "more_cost_usd": dollars,
        }
    )


# --- adaptive rounds: the same rule for the executor and for the report ----------------------

ROUNDS = 20  # looks at the data over a full run; a confidence sequence allows any number
MIN_ROUND = 10  # samples per round at least, so a round keeps the concurrency busy


def round_ends(n_samples: int) -> list[int]:
    """Where each round of an adaptive run ends, in samples of the seeded order."""
    size = max(MIN_ROUND, math.ceil(n_samples / ROUNDS))
    return [*range(size, n_samples, size), n_samples] if n_samples else []


def prefix_decisions(
    values: Mapping[str, SampleValues],
    prefix: set[str],
    config: DecisionConfig,
    inputs: DecisionInputs,
) -> Decisions | None:
    """The verdicts on the samples of ``prefix`` only, each variant's mean taken over them."""
    cut = {v: {k: x for k, x in s.items() if k in prefix} for v, s in values.items()}
    means = {v: sum(s.values()) / len(s) if s else None for v, s in cut.items()}
    return decide_all(cut, config, inputs.model_copy(update={"means": means}))


def still_open(decisions: Decisions | None, active: list[str]) -> list[str]:
    """The variants that need more samples: the reference and the unsettled."""
    if decisions is None:
        return active
    verdicts = by_variant(decisions)
    return [
        v
        for v in active
        if v == decisions.reference or v not in verdicts or not settled(verdicts[v])
    ]


def with_stopping_verdicts(
    decisions: Decisions,
    values: Mapping[str, SampleValues],
    attempted: Mapping[str, frozenset[str]],
    inputs: DecisionInputs,
    config: DecisionConfig,
) -> Decisions:
    """An adaptive run's report: a variant stopped early keeps the verdict that stopped it
    (replayed from the round it was stopped in), not one against a later reference. Rounds
    are counted in samples run (``attempted``), scored or not, as the executor counts them."""
    order = seeded_order(frozenset().union(*attempted.values()), inputs.seed)
    rows = [
        _verdict_at_stop(d, values, attempted, order, (inputs, config), decisions.reference)
        if d.stopped_early
        else d
        for d in decisions.variants
    ]
    return decisions.model_copy(update={"variants": rows})


def _verdict_at_stop(
    d: VariantDecision,
    values: Mapping[str, SampleValues],
    attempted: Mapping[str, frozenset[str]],
    order: list[str],
    rule: tuple[DecisionInputs, DecisionConfig],
    reference: str,
) -> VariantDecision:
    inputs, config = rule
    active = {v: s for v, s in values.items() if len(attempted.get(v, ())) >= d.samples}
    at_stop = prefix_decisions(active, set(order[: d.samples]), config, inputs)
    verdict = by_variant(at_stop).get(d.variant)
    if at_stop is None or verdict is None:
        return d
    against = at_stop.reference if at_stop.reference != reference else None
    return verdict.model_copy(
        update={"stopped_early": True, "against": against, "samples": d.samples}
    )


def settled(decision: VariantDecision) -> bool:
    """An adaptive run stops spending on a variant once its verdict is in."""
    return decision.outcome in ("superior", "non-inferior", "inferior")


def by_variant(decisions: Decisions | None) -> dict[str, VariantDecision]:
    return {d.variant: d for d in decisions.variants} if decisions else {}


def worded(d: VariantDecision, decisions: Decisions) -> str:
    """ "B is non-inferior to A at 0.05 (-0.010, 97.5% interval [-0.040, +0.020])"."""
    ref, margin = d.against or decisions.reference, decisions.margin
    at = f" at {margin:g}" if margin is not None else ""
    verdicts = {
        "superior": f"is better than {ref}",
        "non-inferior": f"is non-inferior to {ref}{at}",
        "inferior": f"is inferior to {ref}" + (f" by more than {margin:g}" if margin else ""),
        "not settled": f"is not settled against {ref}{at}",
        "reference": "is the reference",
    }
    text = f"{d.variant} {verdicts[d.outcome]}"
    return text + (f" ({interval(d.comparison)})" if d.comparison else "")


def interval(c: PairedComparison) -> str:
    if c.diff is None or c.ci_low is None or c.ci_high is None:
        return "too few shared samples"
    level = f"{1 - c.alpha:.1%}".replace(".0%", "%")
    p = "" if c.p_value is None else f", p={c.p_value:.3g}"
    return f"{c.diff:+.3f}, {level} interval [{c.ci_low:+.3f}, {c.ci_high:+.3f}]{p}, n={c.n}"


def to_settle(d: VariantDecision) -> str:
    if d.more_samples is None:
        return "the difference sits on the margin: more data will not settle it"
    dollars = "" if d.more_cost_usd is None else f", about {dollars_text(d.more_cost_usd)}"
    return (
        f"about {d.more_samples} more samples ({d.more_calls} calls{dollars}) "
        "would likely settle it"
    )


def dollars_text(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def shown_within(decisions: Decisions) -> list[str]:
    """The variants shown non-inferior (or better) to the reference, the reference included."""
    ok = ("reference", "superior", "non-inferior")
    return [d.variant for d in decisions.variants if d.outcome in ok]
