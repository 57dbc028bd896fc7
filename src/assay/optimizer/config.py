"""Typed configuration of an optimization run (the Python API mirrors the CLI)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assay.data.datasets import FieldMapping
from assay.engine.engine import Budget, EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.pricing import PriceTable, pin_price
from assay.records import GenerationParams, ModelConfig


class SplitConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    train: float = 0.5
    val: float = 0.2
    test: float = 0.3
    seed: int = Field(default=0, ge=0)  # numpy refuses negative seeds

    @field_validator("test")
    @classmethod
    def _sums_to_one(cls, test: float, info: object) -> float:
        data = getattr(info, "data", {})
        total = data.get("train", 0) + data.get("val", 0) + test
        if abs(total - 1.0) > 1e-6 or min(data.get("train", 0), data.get("val", 0), test) <= 0:
            raise ValueError(f"split fractions must be positive and sum to 1 (got {total:g})")
        return test


class Acceptance(BaseModel):
    """A candidate replaces the best prompt only if its paired val gain clears both bars: the
    max-statistic sign-flip bar at this val look's share of ``alpha`` (``alpha / 2**look``), and
    ``min_gain``. ``alpha`` bounds the run's chance of accepting any candidate that is no better
    than the prompt it replaces; ``power`` sizes the detectable gain the plan states."""

    model_config = ConfigDict(frozen=True)

    min_gain: float = Field(default=0.01, ge=0)  # absolute, on the [0, 1] score scale
    alpha: float = Field(default=0.05, gt=0, lt=1)  # false-accept budget for the whole run
    power: float = Field(default=0.8, gt=0, lt=1)


class StopRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_iterations: int = Field(default=5, ge=0)
    target: float | None = Field(default=None, ge=0, le=1)
    patience: int = Field(default=3, ge=1)


class OptimizeConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: str
    prompt: str
    model: ModelConfig
    reasoning_model: ModelConfig | None = None  # None: the task model reasons
    mapping: FieldMapping = FieldMapping()
    limit: int | None = Field(default=None, ge=1)  # use the first N rows only
    scoring: ScoringConfig = ScoringConfig()
    params: GenerationParams = GenerationParams()
    reasoning_max_tokens: int = Field(default=1024, ge=64)
    reasoning_context_tokens: int | None = None  # None: 2048 for local models, else 32000
    strategy: str = "auto"
    split: SplitConfig = SplitConfig()
    batch_size: int = Field(default=16, ge=1)
    acceptance: Acceptance = Acceptance()
    stop: StopRules = StopRules()
    engine: EngineConfig = EngineConfig()
    source_model: str | None = None
    seed: int = Field(default=0, ge=0)  # numpy refuses negative seeds
    # ``--pipeline FILE.py:FUNCTION``: the prompt is evaluated inside the user's code (see
    # RunConfig.pipeline); the file's sha256 is recorded so a resume refuses a changed one.
    pipeline: str | None = None
    pipeline_sha256: str | None = None

    @property
    def reasoner(self) -> ModelConfig:
        return self.reasoning_model or self.model

    def priced(self, table: PriceTable) -> OptimizeConfig:
        """Every model with its current price pinned: what the run store keeps."""
        reasoner = self.reasoning_model and pin_price(self.reasoning_model, table)
        update = {"model": pin_price(self.model, table), "reasoning_model": reasoner}
        return self.model_copy(update={**update, "scoring": self.scoring.priced(table)})

    @property
    def budget(self) -> Budget:
        return self.engine.budget

    @property
    def context_tokens(self) -> int:
        if self.reasoning_context_tokens:
            return self.reasoning_context_tokens
        return 2048 if self.reasoner.is_local else 32000
