"""LLM judge configuration (the judge itself is built in this module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from assay.records import ModelConfig


class JudgeConfig(BaseModel):
    """A judge bound to a rubric. ``models`` holds one model, or several for a panel."""

    model_config = ConfigDict(frozen=True)

    models: list[ModelConfig]
    rubric: str
    rubric_path: str | None = None
    dimensions: list[str] = Field(default_factory=list)
    repeats: int = Field(default=1, ge=1)
    max_parse_retries: int = Field(default=2, ge=0)
    max_tokens: int = Field(default=512, ge=16)
    temperature: float = 0.0
