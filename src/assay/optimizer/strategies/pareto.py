"""A Pareto pool of prompts, after GEPA: keep every prompt that is best somewhere.

Every candidate that passed its train mini-batch has a val score per item. A candidate survives
if it is best on at least one val item (candidates whose every win is shared with a stronger
one are dropped, weakest first); parents are sampled in proportion to the items they win, so a
prompt that solves a niche keeps being developed even when its mean is not the best. Each child
is a reflective rewrite of one parent from that parent's own train failures; it must not be
worse than its parent on the mini-batch, and it replaces the best prompt only by beating it on
val. The pool lives in this object and is rebuilt from the records on a resume.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from assay.data.prompts import PromptTemplate
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.reasoner import (
    PROPOSE_RETRIES,
    Example,
    ProposalOutcome,
    build_messages,
    propose,
)
from assay.optimizer.records import IterationRecord, prompt_diff
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.common import failing_examples, train_batch, verify
from assay.optimizer.strategies.iterative import IterativeStrategy
from assay.records import GenerationParams

Scores = dict[str, dict[str, float | None]]  # candidate -> item -> value


def item_fronts(scores: Scores) -> list[set[str]]:
    """For each item someone scores above zero on, the candidates with the top score."""
    items = sorted({item for per_item in scores.values() for item in per_item})
    fronts = []
    for item in items:
        values = {c: v[item] for c, v in scores.items() if v.get(item) is not None}
        top = max((v for v in values.values() if v is not None), default=None)
        if top is not None and top > 0:
            fronts.append({c for c, v in values.items() if v == top})
    return fronts


def _mean(values: dict[str, float | None]) -> float:
    known = [v for v in values.values() if v is not None]
    return sum(known) / len(known) if known else 0.0


def survivors(scores: Scores) -> dict[str, int]:
    """Candidates best on at least one item, with the number of items each is best on.

    A candidate is dropped when every item it is best on also has another surviving candidate
    at the top; the weakest (lowest mean) go first, so exact ties keep the stronger prompt.
    """
    fronts = item_fronts(scores)
    alive = set(scores)
    for candidate in sorted(scores, key=lambda c: (_mean(scores[c]), c)):
        if len(alive) == 1:
            break
        others = alive - {candidate}
        if all(front & others for front in fronts if candidate in front):
            alive.remove(candidate)
    return {c: sum(1 for f in fronts if c in f) for c in sorted(alive)}


def pick_parent(wins: dict[str, int], rng: random.Random) -> str:
    """A survivor drawn in proportion to the items it wins (uniformly when none wins any)."""
    names = sorted(wins)
    weights = [wins[n] for n in names]
    if not any(weights):
        return rng.choice(names)
    return rng.choices(names, weights=weights)[0]


async def reflect(
    state: LoopState,
    ctx: OptimizeContext,
    parent: PromptTemplate,
    examples: list[Example],
    retries: int = PROPOSE_RETRIES,
) -> tuple[ProposalOutcome, int]:
    """The reasoner's rewrite of ``parent`` (not necessarily the best prompt) from its failures."""
    inp = replace(
        IterativeStrategy._input(state, ctx, examples), prompt=parent.text, slots=parent.slots
    )
    messages, shown = build_messages(
        inp, ctx.config.context_tokens, ctx.config.reasoning_max_tokens
    )
    params = GenerationParams(
        max_tokens=ctx.config.reasoning_max_tokens, temperature=0.0, seed=ctx.config.seed
    )
    outcome = await propose(ctx.engine, ctx.config.reasoner, messages, params, retries)
    return outcome, shown


class ParetoStrategy(Strategy):
    """Reflective rewrites of parents sampled from a per-item Pareto pool, verified on val."""

    name = "pareto"
    menu = "a pool of prompts that each win some items; rewrite from their own failures"
    chooser_line = "keep prompts that win on different items and rewrite from their failures"
    asks_per_step = 1 + PROPOSE_RETRIES

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        return 2 * batch  # the parent and the rewrite on one batch

    def __init__(self) -> None:
        self.pool: dict[str, PromptTemplate] = {}
        self._read = 0  # records folded into the pool so far

    def _pool(self, state: LoopState) -> dict[str, PromptTemplate]:
        """Every prompt with a val score in the records (the baseline, and candidates that
        passed their mini-batch, from any strategy); read incrementally, so a resumed run
        rebuilds exactly the pool an uninterrupted one holds."""
        for r in state.records[self._read :]:
            if r.val_candidate is not None:
                self.pool.setdefault(r.prompt_hash, PromptTemplate.from_text(r.prompt))
        self._read = len(state.records)
        self.pool.setdefault(state.best.hash, state.best)
        return self.pool

    async def _val_scores(self, pool: Sequence[PromptTemplate], ctx: OptimizeContext) -> Scores:
        """Per-item val values; every member was scored on val already, so these are reused."""
        ids = [s.id for s in ctx.split.val]
        scores: Scores = {}
        for prompt in pool:
            evaluation = await ctx.evaluate(prompt, ctx.split.val)
            scores[prompt.hash] = {i: evaluation.value(i) for i in ids}
        return scores

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        idx = len(state.records)
        pool = self._pool(state)
        wins = survivors(await self._val_scores(list(pool.values()), ctx))
        parent = pool[pick_parent(wins, random.Random(f"{ctx.config.seed}:pareto:{idx}"))]
        batch = train_batch(ctx, idx)
        on_batch = await ctx.evaluate(parent, batch)
        outcome, shown = await reflect(state, ctx, parent, failing_examples(on_batch, batch))
        record = IterationRecord(
            idx=idx,
            strategy=self.name,
            status="rejected",
            parent_hash=parent.hash,
            prompt_hash=parent.hash,
            prompt=parent.text,
            train_parent=on_batch.mean,
            val_best_before=state.best_val.mean,
            examples_shown=shown,
            reasoner_replies=outcome.replies,
            strategy_state={"pool": len(pool), "front": {h[:12]: n for h, n in wins.items()}},
        )
        if outcome.proposal is None:
            return record.model_copy(update={"reason": outcome.error or "no proposal"})
        child = PromptTemplate.from_text(outcome.proposal.prompt)
        record = record.model_copy(
            update={
                "prompt_hash": child.hash,
                "prompt": child.text,
                "diagnosis": outcome.proposal.diagnosis,
                "explanation": outcome.proposal.explanation,
                "diff": prompt_diff(parent.text, child.text),
            }
        )
        if child.hash in pool:
            return record.model_copy(update={"reason": "already in the pool"})
        return await verify(record, child, on_batch, batch, state, ctx)
