"""The run report: what ``-o results.json`` and ``--json`` hold (schema ``assay.run/v1``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from assay.analysis.compare import PairRow
from assay.analysis.summary import VariantSummary

RUN_SCHEMA = "assay.run/v1"


class DatasetInfo(BaseModel):
    path: str
    sha256: str
    n_samples: int
    has_reference: bool


class RunReport(BaseModel):
    schema_version: str = Field(default=RUN_SCHEMA, alias="schema")
    run_id: str
    status: str
    stopped_reason: str | None = None
    dataset: DatasetInfo
    primary_metric: str
    variants: list[VariantSummary]
    comparisons: list[PairRow]
    pareto_quality_cost: list[str]
    pareto_quality_latency: list[str]
    recommendation: str
    judge_cost_usd: float | None
    total_cost_usd: float | None
    spent_usd: float | None

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)
