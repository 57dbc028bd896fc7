"""Typed configuration of a benchmark run. Stored whole in the run store (no secrets in it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from assay.data.datasets import FieldMapping
from assay.engine.engine import EngineConfig
from assay.engine.pricing import PriceTable, pin_price
from assay.records import GenerationParams, ModelConfig
from assay.scoring.judge import JudgeConfig


class ScoringConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    metrics: list[str] = Field(default_factory=list)
    judge: JudgeConfig | None = None

    def priced(self, table: PriceTable) -> ScoringConfig:
        if self.judge is None:
            return self
        models = [pin_price(m, table) for m in self.judge.models]
        return self.model_copy(update={"judge": self.judge.model_copy(update={"models": models})})


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: str
    prompts: list[str]
    models: list[ModelConfig]
    mapping: FieldMapping = FieldMapping()
    scoring: ScoringConfig = ScoringConfig()
    params: GenerationParams = GenerationParams()
    repeats: int = Field(default=1, ge=1)
    engine: EngineConfig = EngineConfig()
    seed: int = 0
    limit: int | None = Field(default=None, ge=1)
    gpu_cost_per_hour: float | None = Field(default=None, ge=0)

    def priced(self, table: PriceTable) -> RunConfig:
        """Every model with its current price pinned: what the run store keeps."""
        models = [pin_price(m, table) for m in self.models]
        return self.model_copy(update={"models": models, "scoring": self.scoring.priced(table)})
