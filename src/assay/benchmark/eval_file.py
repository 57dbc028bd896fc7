"""The eval as a file (``assay.yaml``): its schema, and the run config it describes.

``EvalFile`` is validated with pydantic; ``schemas/assay.schema.json`` is generated from it
(``python -m assay.benchmark.eval_file``) for editors. Paths in the file are relative to the
file's folder. Models are the entries of a models config file (``ModelEntry``). ``sweeps``
expands every model into one variant per combination of the listed generation settings, each
with its own label (``smollm2 t=0.7 max=64``) and its own typed settings
(``ModelConfig.generation``), so the budget, the estimate and the cache see them.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assay.analysis.decisions import DecisionConfig
from assay.analysis.gate import GateConfig
from assay.benchmark.config import InlinePrompt, RunConfig
from assay.data.datasets import FieldMapping
from assay.engine.engine import Budget, EngineConfig
from assay.engine.limiter import concurrency_fields
from assay.errors import UserInputError
from assay.evaluation.config import ScoringConfig
from assay.pipeline.loader import is_file_spec, split_spec
from assay.providers.config_file import ModelEntry, model_from_entry
from assay.providers.specs import resolve_model
from assay.records import GenerationParams, ModelConfig
from assay.scoring.judge import JudgeConfig, load_rubric

_STRICT = ConfigDict(frozen=True, extra="forbid")
T = TypeVar("T")


class DataSection(BaseModel):
    model_config = _STRICT

    path: str = Field(min_length=1, description="JSONL (messages, Alpaca, ShareGPT, flat) or CSV.")
    input_field: str | None = Field(default=None, description="Input field of flat records.")
    output_field: str | None = Field(default=None, description="Reference field of flat records.")


class PromptText(BaseModel):
    """A prompt written out in the file; ``name`` names its variant (default promptN)."""

    model_config = _STRICT

    text: str = Field(min_length=1, description="The prompt: system text or a {{field}} template.")
    name: str | None = Field(default=None, min_length=1, description="Its variant's name.")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("the prompt text is blank")
        return text


class JudgeSection(BaseModel):
    model_config = _STRICT

    model: str | list[str] = Field(description="Judge model spec, or a list for a panel.")
    rubric: str | None = Field(default=None, description="Rubric file: your idea of good.")
    rubric_text: str | None = Field(
        default=None, min_length=1, description="The rubric written out here."
    )
    base_url: str | None = Field(default=None, description="OpenAI-compatible URL for judges.")
    dimensions: list[str] = Field(default_factory=list, description="Criteria scored apart.")
    repeats: int = Field(default=1, ge=1, description="Judgements per response.")
    max_tokens: int = Field(default=512, ge=16, description="Output token cap per judge reply.")

    @model_validator(mode="after")
    def _one_rubric(self) -> JudgeSection:
        if (self.rubric is None) == (self.rubric_text is None):
            raise ValueError("give the judge one rubric: rubric (a file) or rubric_text")
        return self


class Generation(BaseModel):
    model_config = _STRICT

    max_tokens: int = Field(default=256, ge=1, description="Output token cap per response.")
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature.")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling.")


class BudgetSection(BaseModel):
    model_config = _STRICT

    max_cost: float | None = Field(default=None, ge=0, description="Hard budget in USD.")
    max_calls: int | None = Field(default=None, ge=1, description="Hard cap on model calls.")


class Sweeps(BaseModel):
    """Generation settings to sweep: every combination becomes a variant of every model."""

    model_config = _STRICT

    temperature: list[float] | None = Field(default=None, min_length=1)
    max_tokens: list[int] | None = Field(default=None, min_length=1)
    top_p: list[float] | None = Field(default=None, min_length=1)

    @field_validator("temperature", "max_tokens", "top_p")
    @classmethod
    def _distinct_and_valid(cls, values: list[T] | None) -> list[T] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError("a value is listed twice: each combination must be its own variant")
        return values

    def combinations(self) -> list[dict[str, Any]]:
        axes = {k: v for k, v in self.model_dump().items() if v is not None}
        return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


class EvalFile(BaseModel):
    """``assay.yaml``: the whole eval. Flags given to ``assay run`` override its keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Assay eval file (assay.yaml)")

    data: str | DataSection = Field(description="The dataset: a path, or {path, input_field, …}.")
    prompts: list[str | PromptText] = Field(
        min_length=1, description="Prompt files, or {name, text} written out here."
    )
    models: list[ModelEntry] = Field(
        default_factory=list, description="As in a models config: spec, label, base_url, …"
    )
    pipeline: str | None = Field(
        default=None,
        description="Run your code for each sample: FILE.py:FUNCTION (from this file's folder) "
        "or module:function, called as f(prompt, sample, client). Importing it runs its code.",
    )
    metrics: list[str] = Field(default_factory=list, description="Reference metrics.")
    judge: JudgeSection | None = None
    margin: float | None = Field(default=None, ge=0, description="The loss you accept.")
    baseline: str | None = Field(default=None, description="Compare every variant with this.")
    adaptive: bool = Field(default=False, description="Stop spending once settled (margin).")
    budget: BudgetSection = BudgetSection()
    generation: Generation = Generation()
    repeats: int = Field(default=1, ge=1, le=1000, description="Responses per sample and model.")
    limit: int | None = Field(default=None, ge=1, description="Use the first N rows only.")
    seed: int = Field(default=0, ge=0, description="Seed for sampling and statistics.")
    concurrency: int | str | None = Field(
        default=None, description="Requests in flight: a number, or auto (auto:N caps it at N)."
    )
    sweeps: Sweeps | None = None
    gate: GateConfig = GateConfig()
    shard: str | None = Field(
        default=None,
        pattern=r"^\s*[0-9]+\s*/\s*[0-9]+\s*$",
        description="Evaluate only shard i of n (i/n, e.g. 2/3; often --shard per machine); "
        "join the shard runs with assay merge.",
    )

    @field_validator("concurrency")
    @classmethod
    def _a_concurrency(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            concurrency_fields(value)  # a ValueError names what is wrong
        return value

    def data_section(self) -> DataSection:
        return DataSection(path=self.data) if isinstance(self.data, str) else self.data


def run_config(
    spec: EvalFile,
    source: Path,
    engine: EngineConfig,
    models: list[ModelConfig] | None = None,
    gpu_cost_per_hour: float | None = None,
) -> RunConfig:
    """The run ``spec`` (read from the file ``source``) describes; relative paths are taken
    from the file's folder. ``models`` (from flags) replace the file's; ``engine`` gives what
    the file does not set (timeout, cache, local slots)."""
    base = source.parent
    data = spec.data_section()
    params = GenerationParams(
        max_tokens=spec.generation.max_tokens,
        temperature=spec.generation.temperature,
        top_p=spec.generation.top_p,
        seed=spec.seed,
    )
    chosen = models if models is not None else _models(spec.models, source)
    return RunConfig(
        data=str(base / data.path),
        prompts=[_prompt(p, i, base) for i, p in enumerate(spec.prompts, start=1)],
        models=swept(chosen, spec.sweeps, params),
        mapping=FieldMapping(input_field=data.input_field, output_field=data.output_field),
        scoring=ScoringConfig(
            metrics=[_metric(m, base) for m in spec.metrics], judge=_judge(spec.judge, base)
        ),
        params=params,
        repeats=spec.repeats,
        engine=_engine(spec, engine),
        seed=spec.seed,
        limit=spec.limit,
        gpu_cost_per_hour=gpu_cost_per_hour,
        decision=DecisionConfig(margin=spec.margin, baseline=spec.baseline, adaptive=spec.adaptive),
        pipeline=_pipeline(spec.pipeline, base),
        shard=spec.shard,
    )


def _models(entries: list[ModelEntry], source: Path) -> list[ModelConfig]:
    if not entries:
        raise UserInputError(f"{source}: no models", "list them under models: (or pass -m SPEC)")
    return [
        model_from_entry(e, str(source), f"{source}: models #{i}")
        for i, e in enumerate(entries, start=1)
    ]


def _prompt(source: str | PromptText, index: int, base: Path) -> str | InlinePrompt:
    if isinstance(source, str):
        return str(base / source)
    return InlinePrompt(name=source.name or f"prompt{index}", text=source.text)


def _pipeline(spec: str | None, base: Path) -> str | None:
    """A pipeline file is read from the eval file's folder too."""
    if spec is None:
        return None
    where, name = split_spec(spec)
    return f"{base / where}:{name}" if is_file_spec(where) else spec


def _metric(spec: str, base: Path) -> str:
    """A metric whose argument is a file (``json-schema:F``, ``python:F.py:FUNC``) reads it
    from the eval file's folder too."""
    kind, _, arg = spec.partition(":")
    if kind == "json-schema" and arg:
        return f"{kind}:{base / arg}"
    if kind == "python" and ":" in arg:
        path, _, func = arg.rpartition(":")
        return f"{kind}:{base / path}:{func}"
    return spec


def _judge(judge: JudgeSection | None, base: Path) -> JudgeConfig | None:
    if judge is None:
        return None
    specs = [judge.model] if isinstance(judge.model, str) else judge.model
    rubric_path = str(base / judge.rubric) if judge.rubric is not None else None
    return JudgeConfig(
        models=[resolve_model(s, base_url=judge.base_url) for s in specs],
        rubric=load_rubric(rubric_path) if rubric_path else judge.rubric_text or "",
        rubric_path=rubric_path,
        dimensions=judge.dimensions,
        repeats=judge.repeats,
        max_tokens=judge.max_tokens,
    )


def _engine(spec: EvalFile, engine: EngineConfig) -> EngineConfig:
    budget = Budget(max_cost_usd=spec.budget.max_cost, max_calls=spec.budget.max_calls)
    given = concurrency_fields(spec.concurrency) if spec.concurrency is not None else {}
    return engine.model_copy(update={**given, "budget": budget})


SHORT_NAMES = {"temperature": "t", "max_tokens": "max", "top_p": "top_p"}


def swept(
    models: list[ModelConfig], sweeps: Sweeps | None, params: GenerationParams
) -> list[ModelConfig]:
    """Every model once per combination of the swept settings (none: the models as given)."""
    if sweeps is None:
        return models
    return [
        model.model_copy(
            update={
                "label": sweep_label(model.label, combo),
                "generation": params.model_copy(update=combo),
            }
        )
        for model in models
        for combo in sweeps.combinations()
    ]


def sweep_label(label: str, combo: dict[str, Any]) -> str:
    """``smollm2 t=0.7 max=64``: the model's label and the settings of its combination."""
    parts = [f"{SHORT_NAMES.get(k, k)}={v:g}" for k, v in combo.items()]
    return " ".join([label, *parts])


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``assay.yaml``, as committed in ``schemas/assay.schema.json``."""
    schema = EvalFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m assay.benchmark.eval_file > schemas/assay.schema.json
    print(json_schema_text(), end="")
