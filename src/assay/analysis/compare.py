"""Between variants: paired comparisons, Pareto fronts, and a plain-language recommendation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from pydantic import BaseModel

from assay.analysis.decisions import (
    AdaptiveSpend,
    DecisionConfig,
    DecisionInputs,
    Decisions,
    ItemKey,
    SampleValues,
    VariantDecision,
    by_variant,
    compare_fixed,
    compare_sequential,
    decide_all,
    per_sample,
    round_ends,
    shown_within,
    to_settle,
    with_stopping_verdicts,
    worded,
)
from assay.analysis.summary import VariantSummary
from assay.scoring.stats import PairedComparison, pareto_front
from assay.store.runstore import ResultRow


class PairRow(BaseModel):
    a: str
    b: str
    comparison: PairedComparison


class Decision(BaseModel):
    pairs: list[PairRow]
    pareto_cost: list[str]
    pareto_latency: list[str]
    recommendation: str
    decisions: Decisions | None = None


def primary_value(row: ResultRow, primary: str) -> float | None:
    score = row.scores.get(primary)
    return score.value if score is not None and score.is_scored else None


def primary_values(rows: Iterable[ResultRow], primary: str) -> dict[ItemKey, float | None]:
    """One variant's primary value per item (sample, repeat); None where it has none."""
    return {(r.sample_id, r.repeat): primary_value(r, primary) for r in rows}


class PrimaryValues:
    """Every variant's primary value per item, collected one result row at a time.

    The item keys are shared between variants: V variants over N items hold N keys, not V x N.
    """

    def __init__(self, primary: str) -> None:
        self.primary = primary
        self.by_variant: dict[str, dict[ItemKey, float | None]] = {}
        self._keys: dict[ItemKey, ItemKey] = {}

    def add(self, row: ResultRow) -> None:
        key = (row.sample_id, row.repeat)
        key = self._keys.setdefault(key, key)
        self.by_variant.setdefault(row.variant, {})[key] = primary_value(row, self.primary)

    def of(self, variant: str) -> dict[ItemKey, float | None]:
        return self.by_variant.get(variant, {})


@dataclass(frozen=True)
class DecisionSetup:
    """What a run's comparison is asked to decide, and the facts it needs about the run."""

    config: DecisionConfig = field(default_factory=DecisionConfig)
    seed: int = 0
    n_samples: int = 0  # rows of the run (an adaptive run's horizon)
    repeats: int = 1
    n_variants: int | None = None  # all of the run's variants, when fewer are being compared


def compare_pairs(
    values: Mapping[str, SampleValues], setup: DecisionSetup = DecisionSetup()
) -> list[PairRow]:
    """Every pair of variants on the samples both were scored on, each pair on its own
    (no correction: the decisions against the reference carry the correction)."""
    alpha, seed = setup.config.alpha, setup.seed
    rows = []
    for a, b in combinations(values, 2):
        if setup.config.adaptive:
            c = compare_sequential(values[a], values[b], alpha, seed, max(setup.n_samples, 1))
        else:
            c = compare_fixed(values[a], values[b], alpha, seed)
        rows.append(PairRow(a=a, b=b, comparison=c))
    return rows


def decide(
    summaries: Sequence[VariantSummary],
    values: Mapping[str, Mapping[ItemKey, float | None]],
    setup: DecisionSetup = DecisionSetup(),
) -> Decision:
    samples = {variant: per_sample(v) for variant, v in values.items()}
    attempted = {variant: frozenset(s for s, _ in v) for variant, v in values.items()}

    def mean(s: VariantSummary) -> float | None:
        return s.score.mean if s.score else None

    inputs = decision_inputs(summaries, samples, setup, attempted)
    decisions = decide_all(samples, setup.config, inputs)
    if decisions is not None and setup.config.adaptive:
        decisions = with_stopping_verdicts(decisions, samples, attempted, inputs, setup.config)
        decisions.adaptive = adaptive_spend(summaries, setup)
    return Decision(
        pairs=compare_pairs(samples, setup),
        pareto_cost=pareto_front([(s.variant, mean(s), s.cost_per_1k_usd) for s in summaries]),
        pareto_latency=pareto_front([(s.variant, mean(s), s.latency_p50_ms) for s in summaries]),
        recommendation=recommend(summaries, decisions),
        decisions=decisions,
    )


def decision_inputs(
    summaries: Sequence[VariantSummary],
    samples: Mapping[str, SampleValues],
    setup: DecisionSetup,
    attempted: Mapping[str, frozenset[str]] | None = None,
) -> DecisionInputs:
    """``attempted``: the samples each variant was run on, scored or not (default: scored)."""
    runs = {v: len(ids) for v, ids in (attempted or {}).items()} or {
        v: len(s) for v, s in samples.items()
    }
    most = max(runs.values(), default=0)
    ends = set(round_ends(setup.n_samples)) if setup.config.adaptive else set()
    stopped = {v for v, n in runs.items() if n < most and n in ends}
    return DecisionInputs(
        means={s.variant: s.score.mean if s.score else None for s in summaries},
        cost_per_sample_usd={s.variant: _cost_per_sample(s, setup.repeats) for s in summaries},
        calls_per_sample=setup.repeats,
        samples_left=max(setup.n_samples - most, 0),
        stopped_early=frozenset(stopped),
        attempted=runs,
        horizon=max(setup.n_samples, 1),
        seed=setup.seed,
        n_variants=setup.n_variants or len(summaries) or None,
    )


def adaptive_spend(summaries: Sequence[VariantSummary], setup: DecisionSetup) -> AdaptiveSpend:
    full_per_variant = setup.n_samples * setup.repeats
    costs = [s.total_cost_usd for s in summaries]
    full = [
        None if s.total_cost_usd is None or not s.n_requests
        else s.total_cost_usd / s.n_requests * full_per_variant
        for s in summaries
    ]  # fmt: skip
    return AdaptiveSpend(
        calls=sum(s.n_requests for s in summaries),
        full_calls=full_per_variant * len(summaries),
        cost_usd=None if None in costs else sum(c or 0.0 for c in costs),
        full_cost_usd=None if None in full else sum(c or 0.0 for c in full),
    )


def _cost_per_sample(s: VariantSummary, repeats: int) -> float | None:
    if s.total_cost_usd is None or s.n_requests == 0:
        return None
    return s.total_cost_usd / s.n_requests * repeats


def recommend(summaries: Sequence[VariantSummary], decisions: Decisions | None) -> str:
    scored = [s for s in summaries if s.score and s.score.mean is not None]
    if not scored or decisions is None:
        return "No variant produced a score; look at the errors and unscored counts."
    best = max(scored, key=lambda s: s.score.mean if s.score and s.score.mean else 0.0)
    if len(scored) == 1:
        return f"Only {best.variant} produced scores ({_fmt_mean(best)})."
    rows = by_variant(decisions)
    others = [rows[s.variant] for s in scored if s.variant in rows]
    return " ".join(
        [
            _choice(scored, decisions),
            f"Best score: {best.variant} ({_fmt_mean(best)}).",
            *[_versus(d, decisions) for d in others if d.outcome != "reference"],
            _method(decisions),
        ]
    )


def _choice(scored: list[VariantSummary], decisions: Decisions) -> str:
    """With a margin: the cheapest variant shown non-inferior to the reference. Without: the
    reference, or the best variant shown better than it."""
    named = {s.variant: s for s in scored}
    ref = named.get(decisions.reference)
    if ref is None:
        return f"No scores for the reference {decisions.reference}."
    role = "the baseline" if decisions.baseline else "the highest score"
    if decisions.margin is None:
        better = [named[v] for v in _outcomes(decisions, "superior") if v in named]
        if better:
            top = max(better, key=lambda s: s.score.mean if s.score and s.score.mean else 0.0)
            return f"Recommended: {top.variant}, shown better than {ref.variant}."
        return f"Recommended: {ref.variant} ({role})."
    within = [named[v] for v in shown_within(decisions) if v in named]
    pick = _cheapest(within, ref)
    if pick is ref:
        if len(within) == 1:
            return (
                f"Recommended: {ref.variant} ({role}); no other variant is shown non-inferior "
                f"to it at a margin of {decisions.margin:g}."
            )
        return f"Recommended: {ref.variant} ({role}; nothing shown within the margin costs less)."
    return (
        f"Recommended: {pick.variant}, shown non-inferior to {ref.variant} at a margin of "
        f"{decisions.margin:g}{_cost_ratio(pick, ref)}."
    )


def _outcomes(decisions: Decisions, outcome: str) -> list[str]:
    return [d.variant for d in decisions.variants if d.outcome == outcome]


def _cheapest(within: list[VariantSummary], ref: VariantSummary) -> VariantSummary:
    if ref.cost_per_1k_usd is None:
        return ref
    priced = [s for s in within if s.cost_per_1k_usd is not None]
    return min(
        priced or [ref],
        key=lambda s: (s.cost_per_1k_usd or 0.0, -(s.score.mean or 0.0) if s.score else 0.0),
    )


def _versus(d: VariantDecision, decisions: Decisions) -> str:
    text = worded(d, decisions)
    if d.stopped_early:
        text += f"; settled after {d.samples} samples"
    if d.outcome == "not settled":
        text += "; " + to_settle(d)
        if decisions.margin is None and d.supported_margin is not None:
            text += (
                f". Not significantly worse is not as good: these data allow a loss of up to "
                f"{d.supported_margin:.3f} (pass --margin to decide at the loss you accept)"
            )
    return text + "."


def _method(decisions: Decisions) -> str:
    k = decisions.comparisons
    correction = f", Bonferroni over {k} comparisons" if k > 1 else ""
    return f"(Method: {decisions.method}{correction}.)"


def _cost_ratio(other: VariantSummary, best: VariantSummary) -> str:
    a, b = other.cost_per_1k_usd, best.cost_per_1k_usd
    if a is None or b is None:
        return ""
    if b == 0:
        return " at the same $0 API cost" if a == 0 else f" at ${a:.4f} per 1k requests vs $0"
    if a == 0:
        return " at no API cost"
    return f" at {a / b:.0%} of the cost per 1k requests"


def _fmt_mean(s: VariantSummary) -> str:
    agg = s.score
    if agg is None or agg.mean is None:
        return "no score"
    ci = (
        ""
        if agg.ci_low is None or agg.ci_high is None
        else (f", 95% CI [{agg.ci_low:.3f}, {agg.ci_high:.3f}]")
    )
    return f"{agg.mean:.3f}{ci}, n={agg.n_scored}"
