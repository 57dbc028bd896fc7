"""Score one response with every configured metric and the judge, as one named set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assay.records import Sample
from assay.scoring.metrics import Metric
from assay.scoring.score import Score
from assay.trace import PipelineRecord

JUDGE_SCORE = "judge"


class AsyncScorer:
    """Anything that judges a response asynchronously (the LLM judge, a panel)."""

    name: str

    async def score(
        self, sample: Sample, output: str, trace: PipelineRecord | None = None
    ) -> Score:  # pragma: no cover
        raise NotImplementedError


@dataclass
class ResponseScorer:
    """The primary score is the judge's when there is one, else the first metric's."""

    metrics: Sequence[Metric]
    judge: AsyncScorer | None = None

    @property
    def names(self) -> list[str]:
        names = [m.name for m in self.metrics]
        return [JUDGE_SCORE, *names] if self.judge else names

    @property
    def primary(self) -> str:
        return self.names[0]

    async def score(
        self, sample: Sample, output: str, trace: PipelineRecord | None = None
    ) -> dict[str, Score]:
        """Reference metrics score the output; the judge also sees a pipeline's ``trace``."""
        scores = {m.name: m(sample, output) for m in self.metrics}
        if self.judge is not None:
            scores[JUDGE_SCORE] = await self.judge.score(sample, output, trace)
        return scores
