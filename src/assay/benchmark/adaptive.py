"""Adaptive runs (``--adaptive``): every variant on the same samples, in rounds, in a seeded random
order; after each round a variant whose verdict is settled gets no more calls.

The verdicts come from confidence sequences (``analysis.decisions``), valid however many rounds
look at them. Rounds are a pure function of the data, the seed and the results so far, so a
resumed run replays the finished rounds from the store (no call is made twice) and continues.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from assay.analysis.compare import PrimaryValues, decision_inputs
from assay.analysis.decisions import by_variant, decide_all, per_sample, seeded_order, settled
from assay.analysis.summary import SUMMARY_DETAILS, VariantTally
from assay.benchmark.plan import RunPlan
from assay.evaluation.execute import ExecutionOutcome, RunContext, execute
from assay.evaluation.items import WorkItem
from assay.records import Sample

ROUNDS = 20  # looks at the data over a full run; a confidence sequence allows any number
MIN_ROUND = 10  # samples per round at least, so a round keeps the concurrency busy


def round_ends(n_samples: int) -> list[int]:
    """Where each round ends, in samples of the seeded order."""
    size = max(MIN_ROUND, math.ceil(n_samples / ROUNDS))
    return [*range(size, n_samples, size), n_samples] if n_samples else []


async def execute_adaptive(
    plan: RunPlan, ctx: RunContext, done: set[tuple[str, str, int]]
) -> ExecutionOutcome:
    """Run round after round until every variant but the reference is settled."""
    order = _seeded_samples(plan)
    active = [v.key for v in plan.variants]
    total, start = ExecutionOutcome(), 0
    for end in round_ends(len(order)):
        outcome = await execute(_round_items(plan, order[start:end], active), ctx, done)
        total.completed += outcome.completed
        if outcome.stopped_reason is not None:
            total.stopped_reason, total.fatal = outcome.stopped_reason, outcome.fatal
            return total
        active = still_open(plan, ctx, {s.id for s in order[:end]}, active)
        start = end
        if len(active) <= 1:
            break
    return total


def _seeded_samples(plan: RunPlan) -> list[Sample]:
    """The run's rows in the seeded order (held in memory: an adaptive run needs them all)."""
    samples = {s.id: s for s in plan.iter_samples()}
    return [samples[i] for i in seeded_order(samples, plan.config.seed)]


def _round_items(plan: RunPlan, samples: Sequence[Sample], active: list[str]) -> Iterator[WorkItem]:
    variants = [v for v in plan.variants if v.key in active]
    for sample in samples:
        for repeat in range(plan.config.repeats):
            for variant in variants:
                yield WorkItem(variant, sample, repeat, plan.request(variant, sample, repeat))


def still_open(plan: RunPlan, ctx: RunContext, seen: set[str], active: list[str]) -> list[str]:
    """The variants that still need samples after a round: the reference and the unsettled."""
    tallies = {key: VariantTally() for key in active}
    values = PrimaryValues(plan.primary_metric)
    for row in ctx.store.result_rows(ctx.run_id, detail_keys=SUMMARY_DETAILS):
        if row.sample_id in seen:
            values.add(row)
            if row.variant in tallies:
                tallies[row.variant].add(row)
    samples = {key: per_sample(values.of(key)) for key in active}
    summaries = [
        tallies[key].summary(key, "", plan.primary_metric, plan.config.seed) for key in active
    ]
    setup = plan.decision_setup()
    decisions = decide_all(samples, setup.config, decision_inputs(summaries, samples, setup))
    if decisions is None:
        return active
    verdicts = by_variant(decisions)
    return [
        key
        for key in active
        if key == decisions.reference or key not in verdicts or not settled(verdicts[key])
    ]
