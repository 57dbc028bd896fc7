"""What both jobs score with: reference metrics and/or a judge, and which score is primary."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from assay.pricing import PriceTable, pin_price
from assay.scoring.judge import JudgeConfig
from assay.scoring.metrics import Metric
from assay.scoring.scorer import JUDGE_SCORE


class ScoringConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    metrics: list[str] = Field(default_factory=list)
    judge: JudgeConfig | None = None

    def priced(self, table: PriceTable) -> ScoringConfig:
        if self.judge is None:
            return self
        models = [pin_price(m, table) for m in self.judge.models]
        return self.model_copy(update={"judge": self.judge.model_copy(update={"models": models})})


def primary_metric(scoring: ScoringConfig, metrics: Sequence[Metric]) -> str:
    """The score a run ranks by: the judge's, else the first *built* metric's name, which is
    the key its scores are stored under (``number:0.01``, not ``number``)."""
    if scoring.judge is not None:
        return JUDGE_SCORE
    return metrics[0].name
