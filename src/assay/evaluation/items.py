"""What is evaluated: variants (a model with a prompt) and the work items they run on."""

from __future__ import annotations

from dataclasses import dataclass

from assay.data.prompts import PromptTemplate
from assay.records import ModelConfig, Request, Sample


@dataclass(frozen=True)
class Variant:
    """What is being compared: one model with one prompt."""

    key: str
    model: ModelConfig
    prompt: PromptTemplate


@dataclass(frozen=True)
class WorkItem:
    variant: Variant
    sample: Sample
    repeat: int
    request: Request
