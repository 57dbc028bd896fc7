"""Typed configuration of a benchmark run. Stored whole in the run store (no secrets in it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assay.analysis.decisions import DecisionConfig
from assay.data.datasets import FieldMapping
from assay.engine.batch import BatchSettings
from assay.engine.engine import EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.pricing import PriceTable, pin_price
from assay.records import GenerationParams, ModelConfig
from assay.shards import Shard


class InlinePrompt(BaseModel):
    """A prompt written out in an eval file rather than in a file of its own; ``name`` names
    its variant as a file's stem would."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    text: str = Field(min_length=1)


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: str
    prompts: list[str | InlinePrompt]  # prompt files, or prompts written out
    models: list[ModelConfig]
    mapping: FieldMapping = FieldMapping()
    scoring: ScoringConfig = ScoringConfig()
    params: GenerationParams = GenerationParams()
    repeats: int = Field(default=1, ge=1, le=1000)  # as --repeats: a typo must not plan 10**12
    engine: EngineConfig = EngineConfig()
    seed: int = Field(default=0, ge=0)  # numpy refuses negative seeds at analysis time
    limit: int | None = Field(default=None, ge=1)
    gpu_cost_per_hour: float | None = Field(default=None, ge=0)
    decision: DecisionConfig = DecisionConfig()
    # ``--pipeline FILE.py:FUNCTION`` (or ``module:function``): each sample runs the user's code,
    # whose model calls go through the run's engine (docs/pipelines.md). The file's sha256 is
    # recorded when the run starts: a resume refuses a pipeline that changed since.
    pipeline: str | None = None
    pipeline_sha256: str | None = None
    batch: BatchSettings = BatchSettings()  # how models with ``batch=True`` are batched
    # ``--shard i/n``: only the rows of shard i (by a hash of the sample id and seed), so n
    # machines can split one run and ``assay merge`` can join their runs (docs/scale.md).
    shard: Shard | None = None

    @field_validator("models")
    @classmethod
    def _labels_unique(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        """A label is a variant's key in the store: two models under one label would mix."""
        labels = [m.label for m in models]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"two models share the label {', '.join(twice)}: give each its own")
        if not models:
            raise ValueError("no model given")
        return models

    def with_batch(self) -> RunConfig:
        """Every model of the run in batch mode (``--batch``)."""
        models = [m.model_copy(update={"batch": True}) for m in self.models]
        return self.model_copy(update={"models": models})

    def prompt_files(self) -> list[str]:
        return [p for p in self.prompts if isinstance(p, str)]

    def priced(self, table: PriceTable) -> RunConfig:
        """Every model with its current price pinned: what the run store keeps."""
        models = [pin_price(m, table) for m in self.models]
        return self.model_copy(update={"models": models, "scoring": self.scoring.priced(table)})
