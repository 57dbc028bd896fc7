"""Label-free search by pairwise duels: which prompt's responses does the judge prefer?

A small pool of prompts (the best one plus mutations) duels on a few train inputs. Pairs are
chosen by double Thompson sampling over a Beta(1 + wins, 1 + losses) model of each pair; every
comparison is judged in both orders, and a verdict that flips with the order is a tie. The pool
leader is mutated (a reasoner rewrite from the comparisons it lost, else a new layout) and the
weakest prompt is pruned. Win rates stay win rates (rule 4): they live in ``win_rate`` and
``strategy_state``; a leader that is not the best prompt is checked on val with the normal
metric like every other candidate, so the trajectory keeps one scale.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from assay.data.prompts import PromptTemplate
from assay.errors import ProviderError, UserInputError
from assay.optimizer.config import OptimizeConfig
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.guards import check_candidate
from assay.optimizer.reasoner import Example
from assay.optimizer.records import IterationRecord, prompt_diff
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.common import verify
from assay.optimizer.strategies.pareto import reflect
from assay.optimizer.strategies.structural import layout_variants, tried_hashes, usable
from assay.records import Request, Sample
from assay.scoring.judge import JudgeConfig
from assay.scoring.judge_parse import Winner
from assay.scoring.pairwise import PairwiseJudge, PairwiseVerdict

DUELS_PER_STEP = 4
ITEMS_PER_DUEL = 3  # train inputs each pair is compared on
POOL_MAX = 4
SEED_LAYOUTS = 2  # layouts of the best prompt that join a fresh pool


@dataclass
class DuelPool:
    """Prompts and pairwise results: ``wins[i][j]`` is how often i beat j (a tie is half each)."""

    prompts: list[str]
    wins: list[list[float]] = field(default_factory=list)
    judged: set[str] = field(default_factory=set)  # pair and input already compared

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if len(self.wins) != n:
            self.wins = [[0.0] * n for _ in range(n)]

    def add(self, text: str) -> None:
        if text in self.prompts:
            return
        for row in self.wins:
            row.append(0.0)
        self.prompts.append(text)
        self.wins.append([0.0] * len(self.prompts))

    def remove(self, i: int) -> None:
        del self.prompts[i]
        del self.wins[i]
        for row in self.wins:
            del row[i]

    def record(self, i: int, j: int, winner: Winner) -> None:
        share = {"A": (1.0, 0.0), "B": (0.0, 1.0), "tie": (0.5, 0.5)}[winner]
        self.wins[i][j] += share[0]
        self.wins[j][i] += share[1]

    def won(self, i: int) -> float:
        return sum(self.wins[i])

    def lost(self, i: int) -> float:
        return sum(row[i] for row in self.wins)

    def win_rate(self, i: int) -> float | None:
        games = self.won(i) + self.lost(i)
        return self.won(i) / games if games else None

    def strength(self, i: int) -> float:
        """Posterior mean of Beta(1 + wins, 1 + losses)."""
        return (1 + self.won(i)) / (2 + self.won(i) + self.lost(i))

    def leader(self, incumbent: str) -> int:
        """The highest posterior mean; on a tie the incumbent keeps the lead."""
        return max(
            range(len(self.prompts)),
            key=lambda i: (self.strength(i), self.prompts[i] == incumbent, -i),
        )

    def key(self, pair: tuple[int, int], sample: Sample) -> str:
        """Order-free: a repeated comparison would be a cache hit, not new evidence."""
        hashes = sorted(PromptTemplate.from_text(self.prompts[i]).hash[:16] for i in pair)
        return f"{hashes[0]}|{hashes[1]}|{sample.id}"

    def to_state(self) -> dict[str, Any]:
        return {
            "pool": list(self.prompts),
            "wins": [list(r) for r in self.wins],
            "judged": sorted(self.judged),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> DuelPool:
        return cls(list(data["pool"]), [list(r) for r in data["wins"]], set(data["judged"]))


def choose_pair(pool: DuelPool, rng: random.Random) -> tuple[int, int]:
    """Double Thompson sampling: the first prompt is the Copeland winner of one sampled win
    matrix; the second is the one a fresh sample says is most likely to beat the first."""
    n, w = len(pool.prompts), pool.wins
    theta = [[0.5] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            theta[i][j] = rng.betavariate(1 + w[i][j], 1 + w[j][i])
            theta[j][i] = 1 - theta[i][j]
    copeland = [sum(theta[i][j] > 0.5 for j in range(n) if j != i) for i in range(n)]
    first = rng.choice([i for i in range(n) if copeland[i] == max(copeland)])
    challenge = {j: rng.betavariate(1 + w[j][first], 1 + w[first][j]) for j in range(n)}
    second = max((j for j in range(n) if j != first), key=lambda j: challenge[j])
    return first, second


@dataclass(frozen=True)
class Bout:
    """One judged comparison: the pair (pool indexes), the input, both responses, the verdict."""

    pair: tuple[int, int]
    sample: Sample
    responses: tuple[str, str]
    verdict: PairwiseVerdict


@dataclass
class Duels:
    """One step's comparisons: how many were judged and what the leader lost on."""

    judged: int = 0
    order_ties: int = 0
    lost: dict[int, list[Example]] = field(default_factory=dict)
    inputs: list[Sample] = field(default_factory=list)


def tally(pool: DuelPool, duels: Duels, bout: Bout) -> None:
    """Count a verdict; the loser's response and the judge's reason become rewrite feedback."""
    winner = bout.verdict.winner
    if winner is None:
        return  # unjudged: no result either way
    i, j = bout.pair
    pool.record(i, j, winner)
    pool.judged.add(pool.key(bout.pair, bout.sample))
    duels.judged += 1
    duels.order_ties += bout.verdict.order_consistent is False
    if winner != "tie":
        side = 1 if winner == "A" else 0
        reason = (
            next((r for r in bout.verdict.rationales if r), "") or "the judge preferred the other"
        )
        duels.lost.setdefault(bout.pair[side], []).append(
            Example(
                bout.sample.input_text(), bout.responses[side], bout.sample.reference, None, reason
            )
        )


class DuelStrategy(Strategy):
    """Pairwise duels among a small pool of prompts; the leader is verified on val."""

    name = "duel"
    menu = "pairwise duels judged in both orders (needs --judge; no references needed)"
    needs_judge = True
    chooser_line = (
        "compare prompts' responses pairwise with the judge (no reference answers needed)"
    )

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        return DUELS_PER_STEP * ITEMS_PER_DUEL * 2  # both prompts of a pair on each item

    @classmethod
    def check_config(cls, config: OptimizeConfig) -> None:
        if config.scoring.judge is None:
            raise UserInputError(
                "The duel strategy needs a judge to compare responses",
                "pass --judge SPEC --judge-criteria RUBRIC.md (duels use the first judge model)",
            )

    def __init__(self) -> None:
        self.pool: DuelPool | None = None
        self._responses: dict[tuple[str, str], str | None] = {}

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        self.check_config(ctx.config)
        idx = len(state.records)
        rng = random.Random(f"{ctx.config.seed}:duel:{idx}")
        pool = self._pool(state, ctx)
        duels = await self._run_duels(pool, rng, ctx)
        lead = pool.leader(state.best.text)
        record = self._record(state, pool, lead, duels, idx)
        batch = duels.inputs[: ctx.config.batch_size] or rng.sample(ctx.split.train, 1)
        record = await self._judge_leader(record, pool.prompts[lead], batch, state, ctx)
        replies = await self._mutate(pool, lead, duels, state, ctx)
        if record.status == "rejected" and pool.prompts[lead] != state.best.text:
            pool.remove(lead)  # checked and not accepted: leading again would change nothing
        self._prune(pool, state)
        return record.model_copy(
            update={"reasoner_replies": replies, "strategy_state": pool.to_state()}
        )

    def _pool(self, state: LoopState, ctx: OptimizeContext) -> DuelPool:
        """The pool kept in this object; on a fresh start or a resume, rebuilt from records."""
        if self.pool is None:
            saved = [r for r in state.records if r.strategy == self.name and r.strategy_state]
            if saved:
                self.pool = DuelPool.from_state(saved[-1].strategy_state)
            else:
                seeds = usable(layout_variants(state.best.text), state, ctx)
                self.pool = DuelPool([p.text for p in list(seeds.values())[:SEED_LAYOUTS]])
        self.pool.add(state.best.text)
        return self.pool

    async def _run_duels(self, pool: DuelPool, rng: random.Random, ctx: OptimizeContext) -> Duels:
        duels = Duels()
        judge = PairwiseJudge(_first_judge(ctx), ctx.engine)
        per_duel = 2 * ITEMS_PER_DUEL  # responses (each judged twice) per duel, in items
        for _ in range(ctx.affordable(per_duel, DUELS_PER_STEP) if len(pool.prompts) > 1 else 0):
            pair = choose_pair(pool, rng)
            fresh = [s for s in ctx.split.train if pool.key(pair, s) not in pool.judged]
            samples = rng.sample(fresh, min(ITEMS_PER_DUEL, len(fresh)))
            for bout in await self._duel(pool, pair, samples, judge, ctx):
                tally(pool, duels, bout)
            duels.inputs += [s for s in samples if s not in duels.inputs]
        return duels

    async def _duel(
        self,
        pool: DuelPool,
        pair: tuple[int, int],
        samples: list[Sample],
        judge: PairwiseJudge,
        ctx: OptimizeContext,
    ) -> list[Bout]:
        async def one(sample: Sample) -> Bout | None:
            a = await self._respond(pool.prompts[pair[0]], sample, ctx)
            b = await self._respond(pool.prompts[pair[1]], sample, ctx)
            if a is None or b is None:
                return None  # a failed request is not a loss (rule 1)
            return Bout(pair, sample, (a, b), await judge.compare(sample, a, b))

        results = await asyncio.gather(*(one(s) for s in samples))
        return [r for r in results if r is not None]

    async def _respond(self, text: str, sample: Sample, ctx: OptimizeContext) -> str | None:
        """The task model's response, through the engine and its cache.

        Not ctx.evaluate: that would also score each response pointwise with the judge, paying
        twice for a number the duel must not use. The request equals the evaluator's, so a later
        evaluation of the same prompt and row is a cache hit.
        """
        key = (PromptTemplate.from_text(text).hash, sample.id)
        if key not in self._responses:
            request = Request(
                messages=PromptTemplate.from_text(text).render(sample), params=ctx.config.params
            )
            try:
                completion = await ctx.engine.complete(ctx.config.model, request, purpose="task")
                self._responses[key] = completion.text
            except ProviderError:
                self._responses[key] = None
        return self._responses[key]

    def _record(
        self, state: LoopState, pool: DuelPool, lead: int, duels: Duels, idx: int
    ) -> IterationRecord:
        text = pool.prompts[lead]
        rate = pool.win_rate(lead)
        return IterationRecord(
            idx=idx,
            strategy=self.name,
            status="rejected",
            parent_hash=state.best.hash,
            prompt_hash=PromptTemplate.from_text(text).hash,
            prompt=text,
            val_best_before=state.best_val.mean,
            diff=prompt_diff(state.best.text, text),
            explanation=f"pool leader after {duels.judged} pairwise comparisons "
            f"({duels.order_ties} ties from order flips)",
            win_rate=rate,
            duels=duels.judged,
        )

    async def _judge_leader(
        self,
        record: IterationRecord,
        text: str,
        samples: list[Sample],
        state: LoopState,
        ctx: OptimizeContext,
    ) -> IterationRecord:
        """A leader other than the best prompt is scored with the normal metric: the duel
        inputs as its train batch, then val."""
        rate = "n/a" if record.win_rate is None else f"{record.win_rate:.2f}"
        if text == state.best.text:
            return record.model_copy(
                update={"reason": f"the best prompt still leads the duels (win rate {rate})"}
            )
        leader = PromptTemplate.from_text(text)
        if leader.hash in tried_hashes(state):
            return record.model_copy(
                update={"reason": "the duel leader was already checked on val"}
            )
        parent = await ctx.evaluate(state.best, samples)
        record = record.model_copy(update={"train_parent": parent.mean})
        return await verify(record, leader, parent, samples, state, ctx)

    async def _mutate(
        self, pool: DuelPool, lead: int, duels: Duels, state: LoopState, ctx: OptimizeContext
    ) -> list[str]:
        """A child of the leader: the reasoner's rewrite from its lost comparisons, else a layout
        the pool does not have yet."""
        text = pool.prompts[lead]
        parent = PromptTemplate.from_text(text)
        # One attempt: a failed rewrite just means a layout child instead.
        outcome, _ = await reflect(state, ctx, parent, duels.lost.get(lead, []), retries=0)
        children = [outcome.proposal.prompt] if outcome.proposal else []
        children += list(layout_variants(text).values())
        for child in children:
            if child not in pool.prompts and admissible(child, state, ctx):
                pool.add(child)
                break
        return outcome.replies

    @staticmethod
    def _prune(pool: DuelPool, state: LoopState) -> None:
        """Drop the weakest until the pool fits; the best prompt and the newest child stay."""
        while len(pool.prompts) > POOL_MAX:
            keep = {state.best.text, pool.prompts[-1]}
            weakest = min(
                (i for i, p in enumerate(pool.prompts) if p not in keep), key=pool.strength
            )
            pool.remove(weakest)


def _first_judge(ctx: OptimizeContext) -> JudgeConfig:
    judge = ctx.config.scoring.judge
    if judge is None:
        raise UserInputError("The duel strategy needs a judge", "pass --judge SPEC")
    return judge.model_copy(update={"models": judge.models[:1]})


def admissible(text: str, state: LoopState, ctx: OptimizeContext) -> bool:
    """A child joins the pool only if it could later pass the val check's guards."""
    held_out = [*ctx.split.val, *ctx.split.test]
    refs = [s.reference for s in ctx.split.train if s.reference]
    candidate = PromptTemplate.from_text(text)
    return check_candidate(candidate, state.best, held_out, refs, train=ctx.split.train) is None
