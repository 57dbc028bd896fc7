"""What every strategy shares: mini-batches, the guards-then-batch-then-val check, acceptance."""

from __future__ import annotations

import math
import random

from assay.data.prompts import PromptTemplate
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.guards import check_candidate
from assay.optimizer.reasoner import FIELD_CAPS, Example
from assay.optimizer.records import IterationRecord
from assay.records import Sample
from assay.store.runstore import ResultRecord
from assay.trace import render_trace


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
                response=_response(result),
                reference=by_id[sample_id].reference,
                score=value,
                reason=f"{reason}. {rationale}" if rationale else reason,
                trace=_trace(result),
            )
        )
    return sorted(rows, key=lambda e: -1.0 if e.score is None else e.score)


def _response(result: ResultRecord) -> str:
    if result.error is not None or result.completion is None:
        return f"[error] {result.error}"
    return result.completion.text


def _trace(result: ResultRecord) -> str:
    """A pipeline's steps on this sample, as the reasoner is shown them (none for a prompt)."""
    record = result.completion.pipeline if result.completion else None
    return render_trace(record, FIELD_CAPS["trace"]) if record is not None else ""


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
