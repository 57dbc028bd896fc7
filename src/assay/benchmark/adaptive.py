"""Adaptive runs (``--adaptive``): every variant on the same samples, in rounds, in a seeded random
order; after each round a variant whose verdict is settled gets no more calls.

The verdicts come from confidence sequences (``analysis.decisions``), valid however many rounds
look at them. Rounds are a pure function of the data, the seed and the results so far, so a
resumed run replays the finished rounds from the store (no call is made twice) and continues.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from assay.analysis.compare import PrimaryValues, decision_inputs
from assay.analysis.decisions import (
    per_sample,
    prefix_decisions,
    round_ends,
    seeded_order,
    still_open,
)
from assay.analysis.summary import SUMMARY_DETAILS
from assay.benchmark.plan import RunPlan
from assay.evaluation.execute import ExecutionOutcome, RunContext, execute
from assay.evaluation.items import WorkItem
from assay.records import Sample

__all__ = ["execute_adaptive", "open_after_round", "round_ends"]


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
        active = open_after_round(plan, ctx, {s.id for s in order[:end]}, active)
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


def open_after_round(
    plan: RunPlan, ctx: RunContext, seen: set[str], active: list[str]
) -> list[str]:
    """The variants that still need samples after a round: the reference and the unsettled,
    decided on the samples seen so far by the rule the report replays."""
    values = PrimaryValues(plan.primary_metric)
    for row in ctx.store.result_rows(ctx.run_id, detail_keys=SUMMARY_DETAILS):
        if row.sample_id in seen and row.variant in active:
            values.add(row)
    samples = {key: per_sample(values.of(key)) for key in active}
    setup = plan.decision_setup()
    inputs = decision_inputs([], samples, setup)
    return still_open(prefix_decisions(samples, seen, setup.config, inputs), active)
