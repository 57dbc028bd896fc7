"""Plan a run: variants (model x prompt), work items, and the pre-flight estimate."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path

from assay.analysis.compare import DecisionSetup
from assay.benchmark.config import RunConfig
from assay.data.datasets import Dataset
from assay.data.prompts import PromptTemplate
from assay.evaluation.items import Variant, WorkItem
from assay.pipeline.loader import Pipeline
from assay.pipeline.pilot import PILOT_ROWS, measure_pilot
from assay.pricing import PriceTable, batch_price, cost_usd
from assay.records import GenerationParams, ModelConfig, Request, Sample
from assay.scoring.judge import TRACE_MAX_CHARS
from assay.scoring.metrics import Metric
from assay.store.runstore import ResultRecord

CHARS_PER_TOKEN = 4  # a rough, stated rule for estimates only; real usage is measured


@dataclass(frozen=True)
class Estimate:
    label: str
    calls: int
    input_tokens: int
    max_output_tokens: int
    cost_usd: float | None  # upper bound; None when the price is unknown
    batch: bool = False  # sent through a batch API, and priced at its batch price
    batch_discount: float | None = None  # the share of the price that API takes off


@dataclass(frozen=True)
class RunPlan:
    config: RunConfig
    dataset: Dataset
    variants: list[Variant]
    metrics: list[Metric]
    primary_metric: str  # the key the primary scores are stored under
    pipeline: Pipeline | None = None  # --pipeline: the user's code runs each item

    @property
    def n_rows_all_shards(self) -> int:
        """The dataset's rows, or the first ``limit``: the rows of the run, every shard's."""
        limit = self.config.limit
        return min(limit, len(self.dataset)) if limit else len(self.dataset)

    @cached_property
    def n_samples(self) -> int:
        """The rows this run uses: ``n_rows_all_shards``, or of those its shard's (counted
        once, in a pass over the file)."""
        if self.config.shard is None:
            return self.n_rows_all_shards
        return sum(1 for _ in self.iter_samples())

    def iter_samples(self) -> Iterator[Sample]:
        """The rows this run uses, read afresh from the data file (never all held at once)."""
        samples = self.dataset.iter_samples(self.config.limit)
        shard, seed = self.config.shard, self.config.seed
        if shard is None:
            return samples
        return (s for s in samples if shard.holds(s.id, seed))

    @property
    def n_items(self) -> int:
        return len(self.variants) * self.n_samples * self.config.repeats

    def items(self) -> Iterator[WorkItem]:
        """Sample-major order, so an interrupted run has compared every model on the same rows."""
        for sample in self.iter_samples():
            for repeat in range(self.config.repeats):
                for variant in self.variants:
                    yield WorkItem(variant, sample, repeat, self.request(variant, sample, repeat))

    def pilot_items(self) -> list[WorkItem]:
        """The first rows under every variant (first repeat): where a pipeline is measured."""
        return [
            WorkItem(variant, sample, 0, self.request(variant, sample, 0))
            for sample in islice(self.iter_samples(), PILOT_ROWS)
            for variant in self.variants
        ]

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
        batch = variant.model.batch
        estimates.append(
            Estimate(
                variant.key,
                calls,
                tokens_in,
                calls * max_out,
                cost_usd(batch_price(price) if batch else price, tokens_in, calls * max_out),
                batch=batch,
                batch_discount=price.batch_discount if batch and price else None,
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
    if plan.pipeline is not None:
        per_call_chars += TRACE_MAX_CHARS  # the judge also reads the pipeline's trace
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


def estimate_pipeline(
    plan: RunPlan, prices: PriceTable, pilot: Sequence[ResultRecord]
) -> list[Estimate]:
    """Each variant's calls and input tokens, extrapolated from what the pipeline did on the
    pilot rows (``pilot``: their results); output at most each call's ``max_tokens``. Without a
    measured call, one call a row of the plain prompt's size is assumed."""
    rows = plan.n_samples * plan.config.repeats
    plain = estimate_task(plan, prices)
    estimates = []
    for variant, fallback in zip(plan.variants, plain, strict=True):
        measure = measure_pilot(r for r in pilot if r.variant == variant.key)
        calls = math.ceil(measure.calls_per_row * rows)
        per_call = measure.input_tokens_per_call
        tokens = fallback.input_tokens if per_call is None else math.ceil(per_call * calls)
        max_out = calls * (plan.params_of(variant).max_tokens or 1024)
        price = prices.lookup(variant.model)
        label = f"{variant.key} ({measure.note()})"
        estimates.append(Estimate(label, calls, tokens, max_out, cost_usd(price, tokens, max_out)))
    return estimates
