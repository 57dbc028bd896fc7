"""Evaluate a prompt on samples: every call goes through the engine and lands in the run store.

A result already in the store (this run, an earlier session of it) is reused, never re-sent:
that is what makes ``--resume`` repeat no completed call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from assay.data.prompts import PromptTemplate
from assay.errors import AuthError, BudgetExceeded
from assay.evaluation.execute import RunContext, run_item
from assay.evaluation.items import Variant, WorkItem
from assay.records import ModelConfig, Request, Sample
from assay.scoring.stats import Aggregate, aggregate
from assay.store.runstore import ResultRecord


def variant_key(prompt: PromptTemplate) -> str:
    return f"prompt:{prompt.hash[:16]}"


@dataclass(frozen=True)
class Evaluation:
    prompt: PromptTemplate
    results: dict[str, ResultRecord]  # by sample id
    primary: str

    def value(self, sample_id: str) -> float | None:
        score = self.results[sample_id].scores.get(self.primary)
        return score.value if score is not None and score.is_scored else None

    @property
    def aggregate(self) -> Aggregate:
        return aggregate(
            [r.scores[self.primary] for r in self.results.values() if self.primary in r.scores]
        )

    @property
    def mean(self) -> float | None:
        return self.aggregate.mean


EvaluateFn = Callable[[PromptTemplate, Sequence[Sample]], Awaitable[Evaluation]]


class Evaluator:
    """The evaluation step strategies receive (a seam for pipelines: any EvaluateFn works)."""

    def __init__(self, ctx: RunContext, model: ModelConfig, request_for: RequestFactory) -> None:
        self.ctx = ctx
        self.model = model
        self.request_for = request_for
        self._known: dict[tuple[str, str], ResultRecord] = {
            (r.variant, r.sample_id): r for r in ctx.store.results(ctx.run_id)
        }
        self.sent_sample_ids: set[str] = set()

    @property
    def task_calls_per_item(self) -> float:
        """Model calls one evaluated sample makes: 1 for a prompt, a pipeline's mean so far."""
        records = [r.completion.pipeline for r in self._known.values() if r.completion]
        calls = [len(p.calls) for p in records if p is not None]
        return max(1.0, sum(calls) / len(calls)) if calls else 1.0

    async def __call__(self, prompt: PromptTemplate, samples: Sequence[Sample]) -> Evaluation:
        variant = Variant(key=variant_key(prompt), model=self.model, prompt=prompt)
        self.ctx.store.save_text("prompt", prompt.text, prompt.hash)
        todo = [s for s in samples if (variant.key, s.id) not in self._known]
        await _run_all([self._one(variant, s) for s in todo])
        results = {s.id: self._known[(variant.key, s.id)] for s in samples}
        return Evaluation(prompt, results, self.ctx.scorer.primary)

    async def _one(self, variant: Variant, sample: Sample) -> None:
        request = self.request_for(variant.prompt, sample)
        self.sent_sample_ids.add(sample.id)
        result = await run_item(WorkItem(variant, sample, 0, request), self.ctx)
        self.ctx.store.save_result(result, self.ctx.engine.ledger.snapshot())
        self._known[(variant.key, sample.id)] = result


RequestFactory = Callable[[PromptTemplate, Sample], Request]


async def _run_all(jobs: list[Awaitable[None]]) -> None:
    """Run jobs concurrently; a budget or auth stop cancels the rest and propagates alone."""
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(job)  # type: ignore[arg-type]
    except* (BudgetExceeded, AuthError) as stopped:
        raise stopped.exceptions[0] from None
