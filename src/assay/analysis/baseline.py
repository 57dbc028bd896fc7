"""The reference point of a label metric: always giving the most common reference label.

A classifier that scores no better than answering "no" to everything has learnt nothing from
its input. The figure is computed here, once, from the run's references (the label metric's
``expected`` detail, one per sample), so the terminal, the JSON, the report and the dashboard
show the same number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from assay.analysis.summary import LABEL_METRIC, VariantSummary
from assay.store.runstore import ResultRow


class MajorityBaseline(BaseModel):
    """Always answering ``answer``: its score under ``metric`` over ``n`` references."""

    metric: str
    answer: str  # the most common reference label (the first in sort order on a tie)
    score: float  # the share of references equal to it, compared as the label metric does
    n: int

    def describe(self) -> str:
        return f"always '{self.answer}' scores {self.score:.3f}"


class ReferenceTally:
    """Each sample's reference label, read from any variant's label score."""

    def __init__(self, metric: str = LABEL_METRIC) -> None:
        self.metric = metric
        self.labels: dict[str, str] = {}

    def add(self, row: ResultRow) -> None:
        score = row.scores.get(self.metric)
        if score is not None and row.sample_id not in self.labels:
            expected = score.details.get("expected")
            if expected is not None:
                self.labels[row.sample_id] = str(expected)

    def baseline(self) -> MajorityBaseline | None:
        return majority_baseline(self.labels.values(), self.metric)


def majority_baseline(
    references: Iterable[str], metric: str = LABEL_METRIC
) -> MajorityBaseline | None:
    """The most common reference and its share; None without references.

    Labels are counted case-insensitively, as the label metric compares them.
    """
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for reference in references:
        key = reference.casefold()
        counts[key] += 1
        spelling[key] = min(spelling.get(key, reference), reference)
    if not counts:
        return None
    top = min(counts, key=lambda key: (-counts[key], spelling[key]))
    n = sum(counts.values())
    return MajorityBaseline(metric=metric, answer=spelling[top], score=counts[top] / n, n=n)


def not_beating(baseline: MajorityBaseline, summaries: Sequence[VariantSummary]) -> list[str]:
    """Variants whose mean under the baseline's metric is no higher than the baseline's."""
    out = []
    for s in summaries:
        agg = s.metrics.get(baseline.metric)
        if agg is not None and agg.mean is not None and agg.mean <= baseline.score:
            out.append(s.variant)
    return out


def baseline_note(
    baseline: MajorityBaseline | None, primary: str, summaries: Sequence[VariantSummary]
) -> str:
    """A sentence for the recommendation when some variant does not beat the baseline."""
    if baseline is None or baseline.metric != primary:
        return ""
    behind = set(not_beating(baseline, summaries))
    if not behind:
        return ""
    scored = [s for s in summaries if s.score is not None and s.score.mean is not None]
    answer = f"'{baseline.answer}' (the most common reference label)"
    if len(behind) == len(scored):
        return f"No variant beats always answering {answer}, which scores {baseline.score:.3f}."
    names = ", ".join(
        f"{s.variant} ({s.score.mean:.3f})"
        for s in scored
        if s.variant in behind and s.score and s.score.mean is not None
    )
    verb = "does" if len(behind) == 1 else "do"
    return f"Always answering {answer} scores {baseline.score:.3f}: {names} {verb} not beat it."


def with_note(recommendation: str, note: str) -> str:
    return f"{recommendation} {note}" if note else recommendation
