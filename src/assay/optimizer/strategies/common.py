"""What every strategy shares: mini-batches, the guards-then-batch-then-val check, acceptance."""

from __future__ import annotations

import random

from assay.data.prompts import PromptTemplate
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.guards import check_candidate
from assay.optimizer.reasoner import FIELD_CAPS, Example
from assay.optimizer.records import IterationRecord
from assay.optimizer.selection import confirm
from assay.records import Sample
from assay.store.runstore import ResultRecord
from assay.trace import render_trace

DEMOS = 4  # demonstrations per set: enough to show the labels, short for small contexts
POOL_MAX = 24  # train rows reserved as demonstrations at most


def demo_pool(ctx: OptimizeContext) -> list[Sample]:
    """Train rows reserved for demonstrations, the same for the whole run (seeded).

    No prompt is ever scored on a pool row, so a demonstration can never meet the row a
    candidate is scored on, whichever strategy showed it. Empty without references or when
    train is too small to spare rows.
    """
    labelled = [s for s in ctx.split.train if s.reference]
    if len(ctx.split.train) < 2 * DEMOS or len(labelled) < DEMOS:
        return []
    size = min(POOL_MAX, max(DEMOS, len(ctx.split.train) // 3), len(labelled))
    return random.Random(f"{ctx.config.seed}:demo-pool").sample(labelled, size)


def scoring_train(ctx: OptimizeContext) -> list[Sample]:
    """The train rows prompts are scored on: train without the demonstration pool."""
    pool = {s.id for s in demo_pool(ctx)}
    return [s for s in ctx.split.train if s.id not in pool]


def train_batch(ctx: OptimizeContext, idx: int) -> list[Sample]:
    """A seeded mini-batch of the scoring rows per iteration (all of them if they are fewer)."""
    rows = scoring_train(ctx)
    size = min(ctx.config.batch_size, len(rows))
    return random.Random(f"{ctx.config.seed}:{idx}").sample(rows, size)


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
    problem = check_candidate(candidate, state.best, held_out, train_refs, train=ctx.split.train)
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
    return await confirm([(record, candidate)], state, ctx)  # the accept rule (selection.py)


def step_record(
    name: str, idx: int, state: LoopState, train_parent: float | None = None, **extra: object
) -> IterationRecord:
    """A step's record before it has a candidate: rejected, on the best prompt so far."""
    return IterationRecord.model_validate(
        {
            "idx": idx,
            "strategy": name,
            "status": "rejected",
            "parent_hash": state.best.hash,
            "prompt_hash": state.best.hash,
            "prompt": state.best.text,
            "train_parent": train_parent,
            "val_best_before": state.best_val.mean,
            **extra,
        }
    )


def outcome_text(record: IterationRecord) -> str:
    if record.status == "accepted":
        return f"helped ({record.gain:+.3f} on val, accepted)"
    if record.gain is None:
        return f"rejected: {record.reason}"
    effect = "hurt" if record.gain < 0 else "no clear effect"
    return f"{effect} ({record.gain:+.3f} on val, rejected)"
