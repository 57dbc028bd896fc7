"""Search strategies: small objects with one method, ``step``, sharing the loop's bookkeeping."""

from __future__ import annotations

import math
import random
from typing import Protocol

from assay.data.prompts import PromptTemplate
from assay.optimize.context import LoopState, OptimizeContext
from assay.optimize.evaluate import Evaluation
from assay.optimize.guards import check_candidate
from assay.optimize.reasoner import (
    Example,
    LogEntry,
    ReasonerInput,
    build_messages,
    propose,
)
from assay.optimize.records import IterationRecord, prompt_diff
from assay.records import GenerationParams, Sample


class Strategy(Protocol):
    name: str

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord: ...


def train_batch(ctx: OptimizeContext, idx: int) -> list[Sample]:
    """A seeded mini-batch of train per iteration (the whole train split if it is smaller)."""
    train = ctx.split.train
    size = min(ctx.config.batch_size, len(train))
    return random.Random(f"{ctx.config.seed}:{idx}").sample(train, size)


def paired_gain(best: Evaluation, candidate: Evaluation) -> tuple[float | None, float | None]:
    """Mean paired difference on val, and its standard error (the noise it must beat)."""
    diffs = []
    for sample_id in best.results:
        a, b = best.value(sample_id), candidate.value(sample_id)
        if a is not None and b is not None:
            diffs.append(b - a)
    if not diffs:
        return None, None
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return mean, None
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    return mean, math.sqrt(var / len(diffs))


def failing_examples(evaluation: Evaluation, samples: list[Sample]) -> list[Example]:
    """Lowest scores first; unscored and failed requests count as failures too."""
    by_id = {s.id: s for s in samples}
    rows = []
    for sample_id, result in evaluation.results.items():
        score = result.scores.get(evaluation.primary)
        value = score.value if score is not None else None
        if value is not None and value >= 1.0:
            continue
        reason = (score.reason if score else "") or (result.error or "")
        rationale = score.details.get("rationale") if score else None
        rows.append(
            Example(
                input=by_id[sample_id].input_text(),
                response=result.completion.text if result.completion else f"[error] {result.error}",
                reference=by_id[sample_id].reference,
                score=value,
                reason=f"{reason}. {rationale}" if rationale else reason,
            )
        )
    return sorted(rows, key=lambda e: -1.0 if e.score is None else e.score)


class IterativeStrategy:
    """Diagnose the failures of the best prompt on a train batch, rewrite, verify on val."""

    name = "iterative"

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        idx = len(state.records)
        batch = train_batch(ctx, idx)
        parent = await ctx.evaluate(state.best, batch)
        examples = failing_examples(parent, batch)
        messages, shown = build_messages(
            self._input(state, ctx, examples),
            ctx.config.context_tokens,
            ctx.config.reasoning_max_tokens,
        )
        params = GenerationParams(
            max_tokens=ctx.config.reasoning_max_tokens, temperature=0.0, seed=ctx.config.seed
        )
        outcome = await propose(ctx.engine, ctx.config.reasoner, messages, params)
        record = IterationRecord(
            idx=idx,
            strategy=self.name,
            status="rejected",
            parent_hash=state.best.hash,
            prompt_hash=state.best.hash,
            prompt=state.best.text,
            train_parent=parent.mean,
            val_best_before=state.best_val.mean,
            examples_shown=shown,
            reasoner_replies=outcome.replies,
        )
        if outcome.proposal is None:
            return record.model_copy(update={"reason": outcome.error or "no proposal"})
        candidate = PromptTemplate.from_text(outcome.proposal.prompt)
        record = record.model_copy(
            update={
                "prompt_hash": candidate.hash,
                "prompt": candidate.text,
                "diagnosis": outcome.proposal.diagnosis,
                "explanation": outcome.proposal.explanation,
                "diff": prompt_diff(state.best.text, candidate.text),
            }
        )
        return await verify(record, candidate, parent, batch, state, ctx)

    @staticmethod
    def _input(state: LoopState, ctx: OptimizeContext, examples: list[Example]) -> ReasonerInput:
        return ReasonerInput(
            prompt=state.best.text,
            scoring=ctx.scoring_text,
            target_model=ctx.config.model.spec,
            trajectory=[r.val_candidate for r in state.records if r.status != "rejected"],
            log=[LogEntry(r.idx, r.explanation, outcome_text(r)) for r in state.records[1:]],
            examples=examples,
            n_failing=len(examples),
            slots=state.best.slots,
            source_model=ctx.config.source_model,
        )


async def verify(
    record: IterationRecord,
    candidate: PromptTemplate,
    parent: Evaluation,
    batch: list[Sample],
    state: LoopState,
    ctx: OptimizeContext,
) -> IterationRecord:
    """Guards, then the train batch, then val: the cheapest rejection first."""
    held_out = [*ctx.split.val, *ctx.split.test]
    train_refs = [s.reference for s in ctx.split.train if s.reference]
    problem = check_candidate(candidate, state.best, held_out, train_refs)
    if problem:
        return record.model_copy(update={"reason": problem})
    on_batch = await ctx.evaluate(candidate, batch)
    record = record.model_copy(update={"train_candidate": on_batch.mean})
    if (on_batch.mean or 0.0) < (parent.mean or 0.0):
        return record.model_copy(
            update={
                "reason": "worse on the train batch "
                f"({parent.mean or 0:.3f} -> {on_batch.mean or 0:.3f})"
            }
        )
    on_val = await ctx.evaluate(candidate, ctx.split.val)
    gain, noise = paired_gain(state.best_val, on_val)
    record = record.model_copy(update={"val_candidate": on_val.mean, "gain": gain, "noise": noise})
    return accept_or_reject(record, ctx)


def accept_or_reject(record: IterationRecord, ctx: OptimizeContext) -> IterationRecord:
    rule = ctx.config.acceptance
    gain, noise = record.gain, record.noise or 0.0
    if gain is None:
        return record.model_copy(update={"reason": "no scored val items to compare"})
    bar = max(rule.min_gain, rule.noise_z * noise)
    if gain > 0 and gain >= bar:
        return record.model_copy(
            update={"status": "accepted", "reason": f"val gain {gain:+.3f} >= {bar:.3f}"}
        )
    return record.model_copy(update={"reason": f"val gain {gain:+.3f} below the bar {bar:.3f}"})


def outcome_text(record: IterationRecord) -> str:
    if record.status == "accepted":
        return f"helped ({record.gain:+.3f} on val, accepted)"
    if record.gain is None:
        return f"rejected: {record.reason}"
    effect = "hurt" if record.gain < 0 else "no clear effect"
    return f"{effect} ({record.gain:+.3f} on val, rejected)"


STRATEGY_TYPES: dict[str, type[IterativeStrategy]] = {"iterative": IterativeStrategy}
