"""Plan a run: variants (model x prompt), work items, and the pre-flight estimate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assay.analysis.compare import DecisionSetup
from assay.benchmark.config import RunConfig
from assay.data.datasets import Dataset
from assay.data.prompts import PromptTemplate
from assay.evaluation.items import Variant, WorkItem
from assay.pricing import PriceTable, cost_usd
from assay.records import GenerationParams, ModelConfig, Request, Sample
from assay.scoring.metrics import Metric

CHARS_PER_TOKEN = 4  # a rough, stated rule for estimates only; real usage is measured


@dataclass(frozen=True)
class Estimate:
    label: str
    calls: int
    input_tokens: int
    max_output_tokens: int
    cost_usd: float | None  # upper bound; None when the price is unknown


@dataclass(frozen=True)
class RunPlan:
    config: RunConfig
    dataset: Dataset
    variants: list[Variant]
    metrics: list[Metric]
    primary_metric: str  # the key the primary scores are stored under

    @property
    def n_samples(self) -> int:
        """The rows this run uses: all of the dataset's, or the first ``limit``."""
        limit = self.config.limit
        return min(limit, len(self.dataset)) if limit else len(self.dataset)

    def iter_samples(self) -> Iterator[Sample]:
        """The rows this run uses, read afresh from the data file (never all held at once)."""
        return self.dataset.iter_samples(self.config.limit)

    @property
    def n_items(self) -> int:
        return len(self.variants) * self.n_samples * self.config.repeats

    def items(self) -> Iterator[WorkItem]:
        """Sample-major order, so an interrupted run has compared every model on the same rows."""
        for sample in self.iter_samples():
            for repeat in range(self.config.repeats):
                for variant in self.variants:
                    yield WorkItem(variant, sample, repeat, self.request(variant, sample, repeat))

    def decision_setup(self) -> DecisionSetup:
        """What the comparison decides, and the run facts its statistics need."""
        return DecisionSetup(
            config=self.config.decision,
            seed=self.config.seed,
            n_samples=self.n_samples,
            repeats=self.config.repeats,
            n_variants=len(self.variants),
        )

    def request(self, variant: Variant, sample: Sample, repeat: int) -> Request:
        return Request(
            messages=variant.prompt.render(sample), params=self.params_of(variant), repeat=repeat
        )

    def params_of(self, variant: Variant) -> GenerationParams:
        """The variant's generation settings: its model's own (a sweep's), else the run's."""
        return variant.model.generation or self.config.params


def build_variants(models: list[ModelConfig], prompts: list[PromptTemplate]) -> list[Variant]:
    """Keys name only what varies: the model, the prompt, or both."""
    names = [Path(p.path).stem if p.path else f"prompt{i + 1}" for i, p in enumerate(prompts)]
    if len(set(names)) != len(names):
        names = [f"{name}#{i + 1}" for i, name in enumerate(names)]

    def key(model: ModelConfig, name: str) -> str:
        if len(prompts) == 1:
            return model.label
        return name if len(models) == 1 else f"{model.label} · {name}"

    return [
        Variant(key=key(m, name), model=m, prompt=p)
        for m in models
        for p, name in zip(prompts, names, strict=True)
    ]


def estimate_task(plan: RunPlan, prices: PriceTable) -> list[Estimate]:
    estimates = []
    calls = plan.n_samples * plan.config.repeats
    for variant, chars in zip(plan.variants, _request_chars(plan), strict=True):
        max_out = plan.params_of(variant).max_tokens or 1024
        tokens_in = chars * plan.config.repeats // CHARS_PER_TOKEN
        price = prices.lookup(variant.model)
        estimates.append(
            Estimate(
                variant.key,
                calls,
                tokens_in,
                calls * max_out,
                cost_usd(price, tokens_in, calls * max_out),
            )
        )
    return estimates


def _request_chars(plan: RunPlan) -> list[int]:
    """Characters of every request each variant sends, one per variant: one pass over the rows."""
    chars = [0] * len(plan.variants)
    for sample in plan.iter_samples():
        for i, variant in enumerate(plan.variants):
            chars[i] += sum(len(m.content) for m in variant.prompt.render(sample))
    return chars


def estimate_judge(plan: RunPlan, prices: PriceTable) -> list[Estimate]:
    judge = plan.config.scoring.judge
    if judge is None:
        return []
    per_call_chars = len(judge.rubric) + 1500  # instructions, input, response, reference
    chars = sum(len(s.input_text()) + len(s.reference or "") for s in plan.iter_samples())
    calls = plan.n_items * judge.repeats
    tokens_in = (
        chars * len(plan.variants) * plan.config.repeats * judge.repeats + calls * per_call_chars
    ) // CHARS_PER_TOKEN
    out = calls * judge.max_tokens
    return [
        Estimate(
            f"judge {m.label}", calls, tokens_in, out, cost_usd(prices.lookup(m), tokens_in, out)
        )
        for m in judge.models
    ]
