"""``screen``: many cheap candidates on small train mini-batches, the promising ones on more
rows, one finalist on val (successive halving, after MIPROv2's minibatch trials and GEPA's
minibatch-then-full-set check).

One step:

1. The best prompt (the parent) answers the step's train batch. Its passed and failed rows are
   spread over two halves in proportion, so each half holds both: a candidate that fixes the
   failures but breaks what passed loses on the first half already.
2. Candidates, in the order the evidence asks for: format repairs first when many answers hold
   no label (``formats``); demonstration sets bootstrapped from the model's own correct answers
   and labelled ones (``bootstrap``); one reasoner rewrite; the layouts of ``structural``.
3. Rung 1: as many candidates as the budget allows, on the first half. The best instructions
   and the best demonstration sets that did at least as well as the parent are then combined
   (instruction x demonstrations) and scored on the same half.
4. Rung 2: the top ``KEEP`` on the second half, ranked on the whole batch.
5. The finalist goes through the usual check (guards, batch, val) only if it beats the parent
   on the batch by two rows' worth (``PROMOTE_ROWS``); otherwise the step ends without paying
   for val, and without spending a share of the run's false-accept budget on a look at val.

Every evaluation goes through ``ctx.evaluate``, so a (prompt, row) pair is paid once per run,
resumes included. A candidate screened in an earlier step from the same parent is not screened
again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from assay.data.prompts import PromptTemplate
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.reasoner import build_messages, propose
from assay.optimizer.records import IterationRecord, prompt_diff
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.bootstrap import (
    BOOT_ROWS,
    DEMO_SETS,
    DemoSet,
    demo_sets,
    own_answers,
)
from assay.optimizer.strategies.common import (
    demo_pool,
    failing_examples,
    step_record,
    train_batch,
    verify,
)
from assay.optimizer.strategies.fewshot import failing_samples
from assay.optimizer.strategies.formats import (
    FORMAT_FIRST,
    format_variants,
    label_set,
    unreadable_share,
)
from assay.optimizer.strategies.iterative import IterativeStrategy
from assay.optimizer.strategies.structural import layout_variants, usable
from assay.records import GenerationParams, Sample

MAX_CANDIDATES = 10  # screened on the first half per step, at most
KEEP = 3  # promoted to the second half
JOINT = 2  # instruction x demonstration combinations per step
PROMOTE_ROWS = 2  # the finalist's lead over the parent on the batch, in rows, to reach val


@dataclass(frozen=True)
class Candidate:
    name: str
    kind: str  # "format", "demos", "rewrite", "layout" or "joint"
    prompt: PromptTemplate
    demos: DemoSet | None = None


@dataclass(frozen=True)
class Rungs:
    """The step's batch in two halves, each with passed and failed rows in proportion."""

    first: list[Sample]
    second: list[Sample]

    @property
    def batch(self) -> list[Sample]:
        return [*self.first, *self.second]


def halves(parent: Evaluation, batch: Sequence[Sample]) -> Rungs:
    failed = failing_samples(parent, batch)
    passed = [s for s in batch if s not in failed]
    size = math.ceil(len(batch) / 2)
    share = round(size * len(failed) / len(batch)) if batch else 0
    # Both kinds in the first half whenever the batch has both.
    low = max(size - len(passed), 1 if failed else 0)
    high = min(len(failed), size - (1 if passed else 0))
    n_failed = min(max(share, low), high) if low <= high else min(len(failed), size)
    first = failed[:n_failed] + passed[: size - n_failed]
    return Rungs(first, [s for s in batch if s not in first])


def screened_before(state: LoopState) -> set[str]:
    """Prompt hashes screened in earlier steps from the current best prompt."""
    seen: set[str] = set()
    for r in state.records:
        if r.parent_hash == state.best.hash:
            seen.update(r.strategy_state.get("screened", {}).values())
    return seen


def ordered(groups: dict[str, list[Candidate]], format_first: bool) -> list[Candidate]:
    """The evidence sets the order: format repair first when many answers are unreadable; else
    demonstrations and the rewrite, one format repair, then layouts."""
    fmt = groups["format"]
    if format_first:
        return [*fmt, *groups["demos"], *groups["rewrite"], *groups["layout"]]
    return [*groups["demos"], *groups["rewrite"], *fmt[:1], *groups["layout"], *fmt[1:]]


def combine(ranked: list[Candidate], scores: dict[str, float], bar: float) -> list[Candidate]:
    """Instruction x demonstrations: the best instructions with the best sets, each at least as
    good as the parent on the first half."""
    good = [c for c in ranked if scores[c.name] >= bar]
    instructions = [c for c in good if c.demos is None][:2]
    sets = [c for c in good if c.kind == "demos"][:2]
    pairs = [(i, d) for d in sets for i in instructions]
    pairs.sort(key=lambda p: instructions.index(p[0]) + sets.index(p[1]))
    combos = []
    for instruction, demos in pairs[:JOINT]:
        assert demos.demos is not None
        text = demos.demos.apply(instruction.prompt.text)
        name = f"{instruction.name}+{demos.name}"
        combos.append(Candidate(name, "joint", PromptTemplate.from_text(text), demos.demos))
    return combos


def _mean(evaluation: Evaluation) -> float:
    return evaluation.mean or 0.0


def most_that_fit(ctx: OptimizeContext, wanted: int, first: int, second: int) -> int:
    """Candidates the budget lets rung 1 screen while keeping rung 2 paid for."""
    spare = ctx.spare_calls()
    if spare is None:
        return wanted
    per = ctx.calls_per_item
    for n in range(wanted, 0, -1):
        if (n * first + min(KEEP, n) * second) * per <= spare:
            return n
    return 0


class ScreenStrategy(Strategy):
    """Screen many candidates on train halves (successive halving); verify the finalist."""

    name = "screen"
    menu = "many candidates (format, demonstrations, rewrite, layouts) screened on train halves"
    chooser_line = (
        "screen many cheap candidates on small train batches: answer-format fixes, worked "
        "examples from the model's own correct answers, a rewrite, layouts"
    )

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        first, second = math.ceil(batch / 2), batch // 2
        return batch + BOOT_ROWS + (MAX_CANDIDATES + JOINT) * first + KEEP * second

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        idx = len(state.records)
        batch = train_batch(ctx, idx)
        parent = await ctx.evaluate(state.best, batch)
        record = step_record(
            self.name,
            idx,
            state,
            parent.mean,
        )
        candidates, record = await self._candidates(state, ctx, parent, batch, record)
        if not candidates:
            return record.model_copy(update={"reason": "no new candidate to screen"})
        rungs = halves(parent, batch)
        return await self._screen(state, ctx, candidates, rungs, record)

    async def _candidates(
        self,
        state: LoopState,
        ctx: OptimizeContext,
        parent: Evaluation,
        batch: list[Sample],
        record: IterationRecord,
    ) -> tuple[list[Candidate], IterationRecord]:
        share = unreadable_share(parent)
        groups = {
            "format": self._named(format_variants(state.best.text, label_set(ctx.split.train))),
            "layout": self._named(layout_variants(state.best.text), kind="layout"),
        }
        groups["demos"] = await self._demo_candidates(state, ctx, parent, batch, idx=record.idx)
        rewrite, replies, diagnosis = await self._rewrite(state, ctx, parent, batch)
        groups["rewrite"] = rewrite
        found = self._usable(ordered(groups, share >= FORMAT_FIRST), state, ctx)
        note = f"{share:.0%} of the best prompt's answers on the train batch were unreadable"
        record = record.model_copy(
            update={
                "diagnosis": "; ".join(p for p in (note, diagnosis) if p),
                "reasoner_replies": replies,
            }
        )
        return found, record

    @staticmethod
    def _named(variants: dict[str, str], kind: str = "format") -> list[Candidate]:
        return [Candidate(n, kind, PromptTemplate.from_text(t)) for n, t in variants.items()]

    @staticmethod
    async def _demo_candidates(
        state: LoopState,
        ctx: OptimizeContext,
        parent: Evaluation,
        batch: list[Sample],
        idx: int,
    ) -> list[Candidate]:
        pool = demo_pool(ctx)
        if not pool:
            return []
        own = await own_answers(ctx, state.best, pool)
        rng = random.Random(f"{ctx.config.seed}:screen-demos:{idx}")
        sets = demo_sets(pool, own, failing_samples(parent, batch), rng)
        return [
            Candidate(s.name, "demos", PromptTemplate.from_text(s.apply(state.best.text)), s)
            for s in sets[:DEMO_SETS]
        ]

    @staticmethod
    async def _rewrite(
        state: LoopState, ctx: OptimizeContext, parent: Evaluation, batch: list[Sample]
    ) -> tuple[list[Candidate], list[str], str]:
        """One reasoner rewrite from the failures; optional, so one attempt and no retries."""
        examples = failing_examples(parent, batch)
        if not examples:
            return [], [], ""
        messages, _ = build_messages(
            IterativeStrategy._input(state, ctx, examples),
            ctx.config.context_tokens,
            ctx.config.reasoning_max_tokens,
        )
        params = GenerationParams(
            max_tokens=ctx.config.reasoning_max_tokens, temperature=0.0, seed=ctx.config.seed
        )
        outcome = await propose(ctx.engine, ctx.config.reasoner, messages, params, max_retries=0)
        if outcome.proposal is None:
            return [], outcome.replies, ""
        rewrite = Candidate("rewrite", "rewrite", PromptTemplate.from_text(outcome.proposal.prompt))
        return [rewrite], outcome.replies, outcome.proposal.diagnosis

    @staticmethod
    def _usable(
        candidates: list[Candidate], state: LoopState, ctx: OptimizeContext
    ) -> list[Candidate]:
        """Candidates that pass the guards, are new, and are distinct, in order."""
        by_name = {c.name: c for c in candidates}
        kept = usable({c.name: c.prompt.text for c in candidates}, state, ctx)
        before = screened_before(state)
        return [
            replace(by_name[name], prompt=prompt)
            for name, prompt in kept.items()
            if prompt.hash not in before
        ][:MAX_CANDIDATES]

    async def _screen(
        self,
        state: LoopState,
        ctx: OptimizeContext,
        candidates: list[Candidate],
        rungs: Rungs,
        record: IterationRecord,
    ) -> IterationRecord:
        first, second = len(rungs.first), len(rungs.second)
        candidates = candidates[: most_that_fit(ctx, len(candidates), first, second)]
        if not candidates:
            return record.model_copy(update={"reason": "the budget leaves no room to screen"})
        scores = {c.name: _mean(await ctx.evaluate(c.prompt, rungs.first)) for c in candidates}
        bar = _mean(await ctx.evaluate(state.best, rungs.first))
        ranked = sorted(candidates, key=lambda c: -scores[c.name])
        combos = self._usable(combine(ranked, scores, bar), state, ctx)
        reserve = KEEP * second * ctx.calls_per_item
        combos = combos[: self._room(ctx, reserve, first)]
        for combo in combos:
            scores[combo.name] = _mean(await ctx.evaluate(combo.prompt, rungs.first))
        pool = sorted([*candidates, *combos], key=lambda c: -scores[c.name])
        promoted = pool[: min(KEEP, ctx.affordable(max(1, second), KEEP))] or pool[:1]
        whole = {c.name: _mean(await ctx.evaluate(c.prompt, rungs.batch)) for c in promoted}
        finalist = max(promoted, key=lambda c: whole[c.name])
        screened = [*candidates, *combos]
        record = self._describe(record, state, finalist, scores, whole, rungs, screened)
        parent = await ctx.evaluate(state.best, rungs.batch)
        lead = (whole[finalist.name] - _mean(parent)) * len(rungs.batch)
        if lead < PROMOTE_ROWS - 1e-9:
            return record.model_copy(
                update={
                    "reason": f"no candidate beat the best prompt on the train batch by "
                    f"{PROMOTE_ROWS} rows ({finalist.name} {whole[finalist.name]:.3f} vs "
                    f"{_mean(parent):.3f}, {len(scores)} screened)"
                }
            )
        return await verify(record, finalist.prompt, parent, rungs.batch, state, ctx)

    @staticmethod
    def _room(ctx: OptimizeContext, reserve: int, first: int) -> int:
        spare = ctx.spare_calls()
        if spare is None:
            return JOINT
        return max(0, min(JOINT, (spare - reserve) // max(1, first * ctx.calls_per_item)))

    @staticmethod
    def _describe(
        record: IterationRecord,
        state: LoopState,
        finalist: Candidate,
        scores: dict[str, float],
        whole: dict[str, float],
        rungs: Rungs,
        screened: list[Candidate],
    ) -> IterationRecord:
        demos = finalist.demos
        shown = ""
        if demos is not None:
            shown = f", {len(demos.demos)} demonstrations ({demos.bootstrapped} bootstrapped)"
        return record.model_copy(
            update={
                "prompt_hash": finalist.prompt.hash,
                "prompt": finalist.prompt.text,
                "explanation": f"{finalist.kind} candidate {finalist.name!r}, best of "
                f"{len(scores)} screened on {len(rungs.first)} + {len(rungs.second)} train rows"
                + shown,
                "diff": prompt_diff(state.best.text, finalist.prompt.text),
                "candidate_scores": dict(scores),
                "demo_ids": demos.ids if demos else [],
                "strategy_state": {
                    "screened": {c.name: c.prompt.hash for c in screened},
                    "promoted": whole,
                    "rows": [len(rungs.first), len(rungs.second)],
                },
            }
        )
