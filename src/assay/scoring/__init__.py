"""Scoring: the Score value, reference metrics and the statistics built on them."""

from assay.scoring.metrics import (
    AVAILABLE_METRICS,
    Metric,
    build_metric,
    build_metrics,
    check_metrics_against_dataset,
    confusion_matrix,
)
from assay.scoring.score import Score, ScoreStatus
from assay.scoring.stats import (
    Aggregate,
    PairedComparison,
    aggregate,
    paired_compare,
    pareto_front,
    percentile,
)

__all__ = [
    "AVAILABLE_METRICS",
    "Aggregate",
    "Metric",
    "PairedComparison",
    "Score",
    "ScoreStatus",
    "aggregate",
    "build_metric",
    "build_metrics",
    "check_metrics_against_dataset",
    "confusion_matrix",
    "paired_compare",
    "pareto_front",
    "percentile",
]
