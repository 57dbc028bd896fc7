"""The run report: what ``-o results.json`` and ``--json`` hold (schema ``assay.run/v1``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, PrivateAttr, computed_field

from assay.analysis.baseline import MajorityBaseline
from assay.analysis.compare import PairRow
from assay.analysis.decisions import Decisions
from assay.analysis.summary import VariantSummary, judge_unscored_total
from assay.records import EndpointUse
from assay.store.run_record import StoredShard

if TYPE_CHECKING:
    import pandas as pd

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
    decisions: Decisions | None = None  # every variant against the reference, at the margin
    majority_baseline: MajorityBaseline | None = None  # label metrics: always the top label
    judge_cost_usd: float | None
    total_cost_usd: float | None
    spent_usd: float | None
    # Calls, errors and cool-downs per endpoint (base URL), over the run's sessions.
    endpoints: list[EndpointUse] = Field(default_factory=list)
    shard: StoredShard | None = None  # a run of one shard's rows (--shard): merge the shards
    merged_from: list[str] = Field(default_factory=list)  # the shard runs merged into this run

    model_config = {"populate_by_name": True}

    def metric_names(self) -> list[str]:
        """The primary metric first, then every other metric any variant was scored with."""
        names = {name for v in self.variants for name in v.metrics}
        return [self.primary_metric, *sorted(names - {self.primary_metric})]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def judge_unscored(self) -> dict[str, int]:
        """Unscored judge results by cause over every variant, the most common first."""
        return judge_unscored_total(self.variants)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)

    # The store the report was computed from, for to_pandas(); not part of the report.
    _store_dir: Path | None = PrivateAttr(default=None)

    def from_store(self, directory: Path) -> RunReport:
        """Remember the run store this report was computed from (``to_pandas`` reads it)."""
        self._store_dir = directory.resolve()
        return self

    def to_pandas(self, store: str | Path | None = None) -> pd.DataFrame:
        """The run's per-sample results as a DataFrame: one row per (sample, variant,
        repeat), the columns of ``assay export``. Reads the run store the report came from
        (or ``store``). Needs pandas: ``pip install 'assay[pandas]'``."""
        from assay.analysis.export import to_dataframe

        return to_dataframe(self.run_id, store if store is not None else self._store_dir)
