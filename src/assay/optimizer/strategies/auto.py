"""``auto``: phases of the other strategies, each chosen from the evidence.

The menu is the registry (``STRATEGY_TYPES``): every strategy with a ``chooser_line`` whose needs
the run meets (references, a judge), in registry order; without references, the strategies that
need a judge come first. The first phase is the menu's first strategy, without asking: ``screen``
(it tries cheap, broad candidates, format repairs, bootstrapped demonstrations, a rewrite and
layouts, on train mini-batches before any strategy spends its calls on one idea), or ``duel``
for data without references when a judge is set. For each later phase the reasoner
sees the baseline's failures, what earlier phases achieved and the menu, and names the next one
on a final ``STRATEGY: name`` line (the last such line counts, and only a name on the menu). An
unparsable or failed choice falls back to the first strategy not run yet, in menu order.

Each phase gets a share of ``--max-iterations`` and its own patience, so a phase that stops
helping ends the phase, not the run; the run ends on the loop's rules (target, budget, global
patience). Every phase starts from the best prompt on val (``state.best``); a rejected candidate
never carries over. The phases are read back from the records, so a resume continues the phase.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from assay.errors import ProviderError
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.reasoner import CHARS_PER_TOKEN, Example
from assay.optimizer.records import IterationRecord
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.common import failing_examples, train_batch
from assay.records import GenerationParams, Message, Request
from assay.scoring.judge_parse import strip_reasoning

PLANNED_PHASES = 4
PHASE_PATIENCE = 2  # rejections in a row that end a phase
CHOOSER_MAX_TOKENS = 256
SYSTEM = (
    "You plan a prompt optimization. From the evidence, pick the one search strategy most "
    "likely to fix the failures next. End your reply with one line: STRATEGY: <name>"
)
_CHOICE = re.compile(r"^\s*STRATEGY:\s*([A-Za-z_-]+)\s*$", re.MULTILINE | re.IGNORECASE)


def registry() -> dict[str, type[Strategy]]:
    # Imported here: the registry imports this module.
    from assay.optimizer.strategies import STRATEGY_TYPES

    return STRATEGY_TYPES


@dataclass(frozen=True)
class Phase:
    number: int
    strategy: str
    steps: int
    rejected_in_a_row: int
    accepted: int


def phases(records: list[IterationRecord]) -> list[Phase]:
    """The phases so far, read from the records (the baseline has none)."""
    grouped: dict[int, list[IterationRecord]] = {}
    for r in records:
        if r.phase is not None:
            grouped.setdefault(r.phase, []).append(r)
    result = []
    for number, rs in sorted(grouped.items()):
        streak = 0
        for r in reversed(rs):
            if r.status != "rejected":
                break
            streak += 1
        accepted = sum(r.status == "accepted" for r in rs)
        result.append(Phase(number, rs[0].strategy, len(rs), streak, accepted))
    return result


def phase_share(max_iterations: int) -> int:
    """Iterations per phase: the budget spread over up to PLANNED_PHASES phases."""
    return math.ceil(max(1, max_iterations) / min(PLANNED_PHASES, max(1, max_iterations)))


def phase_over(phase: Phase, share: int) -> bool:
    return phase.steps >= share or phase.rejected_in_a_row >= PHASE_PATIENCE


def menu_for(has_refs: bool, has_judge: bool) -> tuple[str, ...]:
    """The registry's strategies auto may run, in registry order; without references the
    pairwise (judge) strategies come first, as the judge is then the only signal."""
    offered = [
        name
        for name, kind in registry().items()
        if kind.chooser_line
        and (has_refs or not kind.needs_reference)
        and (has_judge or not kind.needs_judge)
    ]
    if not has_refs:
        offered.sort(key=lambda n: not registry()[n].needs_judge)
    return tuple(offered)


def available(ctx: OptimizeContext) -> tuple[str, ...]:
    has_refs = any(s.reference for s in ctx.split.train)
    return menu_for(has_refs, ctx.config.scoring.judge is not None)


def parse_choice(reply: str, menu: tuple[str, ...]) -> str | None:
    """The last STRATEGY line, if it names a strategy on the menu (an earlier one never counts)."""
    found = _CHOICE.findall(strip_reasoning(reply))
    name = found[-1].lower() if found else None
    return name if name in menu else None


def fallback(menu: tuple[str, ...], done: list[Phase]) -> str:
    """The first strategy not run yet, in menu order; then round the menu again."""
    tried = {p.strategy for p in done}
    fresh = [n for n in menu if n not in tried]
    return fresh[0] if fresh else menu[len(done) % len(menu)]


def diagnosis_text(examples: list[Example], batch_size: int) -> str:
    missed = Counter(e.reference for e in examples if e.reference and len(e.reference) <= 40)
    lines = [f"The baseline prompt fails on {len(examples)} of {batch_size} train rows."]
    if missed:
        counts = ", ".join(f"{label} x{n}" for label, n in missed.most_common(6))
        lines.append(f"Expected answers it got wrong: {counts}.")
    return "\n".join(lines)


def _example_line(e: Example) -> str:
    def cap(text: str | None, n: int) -> str:
        flat = " ".join((text or "").split())
        return flat if len(flat) <= n else flat[: n - 1] + "…"

    expected = f" | Expected: {cap(e.reference, 80)}" if e.reference else ""
    return (
        f"- Input: {cap(e.input, 200)} | Response: {cap(e.response, 120)}{expected}"
        f" | Why: {cap(e.reason, 120)}"
    )


def history_text(done: list[Phase]) -> str:
    if not done:
        return "None yet."
    return "\n".join(
        f"{p.number}. {p.strategy}: {p.steps} step(s), {p.accepted} accepted" for p in done
    )


def chooser_prompt(
    state: LoopState,
    ctx: OptimizeContext,
    examples: list[Example],
    done: list[Phase],
    menu: tuple[str, ...],
) -> str:
    """The evidence, within the reasoner's context: failing examples are dropped to fit."""
    head = (
        f"## Current best prompt\n<current_prompt>\n{state.best.text[:1500]}\n</current_prompt>\n\n"
        f"## How responses are scored\n{ctx.scoring_text[:600]}\n\n"
        f"## Baseline diagnosis\n{diagnosis_text(examples, len(train_batch(ctx, 0)))}\n"
    )
    tail = (
        f"\n## Phases so far\n{history_text(done)}\n{_val_line(state)}\n\n## Strategies\n"
        + "\n".join(f"- {n}: {registry()[n].chooser_line}" for n in menu)
        + "\n\nExplain your choice in one or two sentences, then end with the line "
        "STRATEGY: <name>, using one of: " + ", ".join(menu)
    )
    room = (ctx.config.context_tokens - _chooser_tokens(ctx) - 64) * CHARS_PER_TOKEN
    room -= len(SYSTEM) + len(head) + len(tail)
    shown = []
    for e in examples[:4]:
        line = _example_line(e) + "\n"
        if len(line) > room:
            break
        shown.append(line)
        room -= len(line)
    return head + "".join(shown) + tail


def _val_line(state: LoopState) -> str:
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    base = state.records[0].val_candidate if state.records else None
    return f"Validation score: baseline {f(base)}, best now {f(state.best_val.mean)}."


def _chooser_tokens(ctx: OptimizeContext) -> int:
    return min(ctx.config.reasoning_max_tokens, CHOOSER_MAX_TOKENS)


class AutoStrategy(Strategy):
    """Run the other strategies in phases, each chosen from the evidence so far."""

    name = "auto"
    menu = "screening first, then phases of the others chosen from the failures seen"

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        """Any phase may run any strategy on the menu, so a step costs at most the dearest."""
        return max(t.step_task_calls(batch) for t in registry().values() if t.chooser_line)

    @classmethod
    def reasoning_calls(cls, iterations: int) -> int:
        """The dearest phase's asks per step, plus one choice per phase; a phase can end after
        its share of steps or after ``PHASE_PATIENCE`` rejections in a row."""
        shortest_phase = min(phase_share(iterations), PHASE_PATIENCE)
        asks = max(t.asks_per_step for t in registry().values() if t.chooser_line)
        return iterations * asks + math.ceil(iterations / max(1, shortest_phase))

    def __init__(self) -> None:
        self._running: dict[str, Strategy] = {}  # they keep their pools across phases

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        done = phases(state.records)
        current = done[-1] if done else None
        if current is None or phase_over(current, phase_share(ctx.config.stop.max_iterations)):
            name, why, reply = await self._choose(state, ctx, done)
            number = len(done) + 1
        else:
            name, why, reply, number = current.strategy, "", "", current.number
        record = await self._sub(name).step(state, ctx)
        extra = {"chooser_reply": reply} if reply else {}
        return record.model_copy(
            update={
                "phase": number,
                "phase_reason": why,
                "reason": f"[{name}] {record.reason}",
                "strategy_state": {**record.strategy_state, **extra},
            }
        )

    def _sub(self, name: str) -> Strategy:
        if name not in self._running:
            self._running[name] = registry()[name]()
        return self._running[name]

    async def _choose(
        self, state: LoopState, ctx: OptimizeContext, done: list[Phase]
    ) -> tuple[str, str, str]:
        menu = available(ctx)
        if not done:
            return menu[0], f"first on the menu ({menu[0]}); the reasoner chooses later phases", ""
        batch = train_batch(ctx, 0)
        baseline = await ctx.evaluate(state.baseline, batch)  # stored by the baseline step
        prompt = chooser_prompt(state, ctx, failing_examples(baseline, batch), done, menu)
        reply = await self._ask(ctx, prompt)
        name = parse_choice(reply, menu) if reply else None
        if name is not None:
            return name, f"the reasoner chose {name}", reply
        name = fallback(menu, done)
        problem = "gave no valid STRATEGY line" if reply else "could not be asked"
        return name, f"fallback order ({name}): the reasoner {problem}", reply

    @staticmethod
    async def _ask(ctx: OptimizeContext, prompt: str) -> str:
        params = GenerationParams(
            max_tokens=_chooser_tokens(ctx), temperature=0.0, seed=ctx.config.seed
        )
        messages = (Message(role="system", content=SYSTEM), Message(role="user", content=prompt))
        try:
            completion = await ctx.engine.complete(
                ctx.config.reasoner, Request(messages=messages, params=params), purpose="reasoning"
            )
        except ProviderError:
            return ""
        return completion.text
