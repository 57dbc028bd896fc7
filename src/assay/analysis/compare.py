"""Between variants: paired comparisons, Pareto fronts, and a plain-language recommendation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

from pydantic import BaseModel

from assay.analysis.summary import VariantSummary
from assay.scoring.stats import PairedComparison, paired_compare, pareto_front
from assay.store.runstore import ResultRow

ItemKey = tuple[str, int]


class PairRow(BaseModel):
    a: str
    b: str
    comparison: PairedComparison


class Decision(BaseModel):
    pairs: list[PairRow]
    pareto_cost: list[str]
    pareto_latency: list[str]
    recommendation: str


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


def compare_pairs(values: dict[str, dict[ItemKey, float | None]], seed: int = 0) -> list[PairRow]:
    """Every pair of variants on the items both attempted (paired by sample and repeat)."""
    rows = []
    for a, b in combinations(values, 2):
        keys = sorted(set(values[a]) & set(values[b]))
        comparison = paired_compare(
            [values[a][k] for k in keys], [values[b][k] for k in keys], seed=seed
        )
        rows.append(PairRow(a=a, b=b, comparison=comparison))
    return rows


def decide(summaries: Sequence[VariantSummary], pairs: list[PairRow]) -> Decision:
    def mean(s: VariantSummary) -> float | None:
        return s.score.mean if s.score else None

    return Decision(
        pairs=pairs,
        pareto_cost=pareto_front([(s.variant, mean(s), s.cost_per_1k_usd) for s in summaries]),
        pareto_latency=pareto_front([(s.variant, mean(s), s.latency_p50_ms) for s in summaries]),
        recommendation=recommend(summaries, pairs),
    )


def _find(pairs: list[PairRow], x: str, y: str) -> tuple[PairedComparison, int] | None:
    """The comparison of x against y, with sign +1 when diff means y - x."""
    for row in pairs:
        if (row.a, row.b) == (x, y):
            return row.comparison, 1
        if (row.a, row.b) == (y, x):
            return row.comparison, -1
    return None


def recommend(summaries: Sequence[VariantSummary], pairs: list[PairRow]) -> str:
    scored = [s for s in summaries if s.score and s.score.mean is not None]
    if not scored:
        return "No variant produced a score; look at the errors and unscored counts."
    best = max(scored, key=lambda s: s.score.mean if s.score and s.score.mean else 0.0)
    if len(scored) == 1:
        return f"Only {best.variant} produced scores ({_fmt_mean(best)})."
    sentences = [_versus(best, other, pairs) for other in scored if other is not best]
    return " ".join(
        [
            _choice(best, scored, pairs),
            f"Best score: {best.variant} ({_fmt_mean(best)}).",
            *sentences,
        ]
    )


def _choice(best: VariantSummary, scored: list[VariantSummary], pairs: list[PairRow]) -> str:
    """The cheapest variant that is not significantly worse than the best one."""

    def tied_with_best(s: VariantSummary) -> bool:
        found = _find(pairs, best.variant, s.variant)
        return s is best or (found is not None and not found[0].significant)

    priced = [s for s in scored if s.cost_per_1k_usd is not None and tied_with_best(s)]
    if best.cost_per_1k_usd is None or not priced:
        return f"Recommended: {best.variant} (highest score; cost not comparable)."
    pick = min(
        priced, key=lambda s: (s.cost_per_1k_usd or 0.0, -(s.score.mean or 0.0) if s.score else 0.0)
    )
    if pick is best:
        return f"Recommended: {best.variant}."
    return (
        f"Recommended: {pick.variant}, not significantly worse than {best.variant}"
        f"{_cost_ratio(pick, best)}."
    )


def _versus(best: VariantSummary, other: VariantSummary, pairs: list[PairRow]) -> str:
    found = _find(pairs, best.variant, other.variant)
    if found is None or found[0].diff is None:
        return f"{other.variant} could not be compared on the same items."
    c, sign = found
    diff = (c.diff or 0) * sign
    lo, hi = sorted(((c.ci_low or 0) * sign, (c.ci_high or 0) * sign))
    p = "–" if c.p_value is None else f"{c.p_value:.3g}"
    interval = f"{diff:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}], p={p}"
    cost = _cost_ratio(other, best)
    if c.significant:
        return f"{other.variant} is significantly worse ({interval}){cost}."
    more = f"; about {c.samples_needed} paired samples would settle it" if c.samples_needed else ""
    if c.ci_low is not None and c.ci_high is not None and (hi < 0 or lo > 0):
        return f"{other.variant} is probably worse, but not significantly ({interval}){cost}{more}."
    return f"{other.variant} is within noise of {best.variant} ({interval}){cost}{more}."


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
