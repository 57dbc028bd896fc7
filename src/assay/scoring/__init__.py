"""Scoring: the Score value, reference metrics, the judge, and the statistics built on them.

Names are imported lazily, so reading the run store (which needs only Score) does not load
numpy, scipy or the metric libraries.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "AVAILABLE_METRICS": "metrics",
    "Metric": "metrics",
    "build_metric": "metrics",
    "build_metrics": "metrics",
    "check_metrics_against_dataset": "metrics",
    "confusion_matrix": "metrics",
    "Score": "score",
    "ScoreStatus": "score",
    "Aggregate": "stats",
    "PairedComparison": "stats",
    "aggregate": "stats",
    "aggregate_values": "stats",
    "paired_compare": "stats",
    "pareto_front": "stats",
    "percentile": "stats",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'assay.scoring' has no attribute {name!r}")
    return getattr(import_module(f"assay.scoring.{_HOMES[name]}"), name)
