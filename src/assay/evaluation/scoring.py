"""The scorer both jobs use: the built metrics and, when configured, the judge on the engine."""

from __future__ import annotations

from collections.abc import Sequence

from assay.engine.engine import Engine
from assay.evaluation.config import ScoringConfig
from assay.scoring.metrics import Metric
from assay.scoring.scorer import ResponseScorer


def build_scorer(
    scoring: ScoringConfig, metrics: Sequence[Metric], engine: Engine
) -> ResponseScorer:
    judge = None
    if scoring.judge is not None:
        from assay.scoring.judge import build_judge

        judge = build_judge(scoring.judge, engine)
    return ResponseScorer(list(metrics), judge)
