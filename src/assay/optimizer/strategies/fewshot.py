"""Few-shot demonstrations from train, aimed at the failures the best prompt shows.

Demonstrations come from the run's demonstration pool, train rows that no prompt is ever
scored on (``common.demo_pool``), so no candidate meets its own demonstration rows; val and
test never supply one. The candidate sets target what goes wrong: the pool rows most like
the failing rows, rows covering the labels the model gets wrong, and seeded mixes of both.
The best set on the batch goes through the usual guards-batch-val check. No reasoner is needed.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from assay.data.prompts import SLOT, PromptTemplate
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.records import IterationRecord, prompt_diff
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.common import DEMOS, demo_pool, step_record, train_batch, verify
from assay.records import Sample

EXAMPLES_HEADER = "## Examples"
CANDIDATE_SETS = 4
DEMO_CHARS = 300
_DEMO_LINE = ("Input:", "Answer:")


def split_examples(text: str) -> tuple[str, str]:
    """The prompt without its Examples section, and that section ("" when there is none)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == EXAMPLES_HEADER), None)
    if start is None:
        return text, ""
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(_DEMO_LINE)):
        end += 1
    rest = "\n".join([*lines[:start], *lines[end:]])
    return re.sub(r"\n{3,}", "\n\n", rest).strip(), "\n".join(lines[start:end]).strip()


def _one_line(text: str, limit: int = DEMO_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def demo_input(sample: Sample) -> str:
    text = sample.input_text()
    if not text:
        text = " | ".join(f"{k}: {v}" for k, v in sample.fields.items())
    return _one_line(text)


def examples_block(demos: Sequence[Sample], answers: Mapping[str, str] | None = None) -> str:
    """The section; each answer is the reference unless ``answers`` gives one for the row (a
    bootstrapped demonstration shows what the model itself wrote)."""
    shown = answers or {}
    rows = [
        f"Input: {demo_input(d)}\nAnswer: {_one_line(shown.get(d.id, d.reference or ''))}"
        for d in demos
    ]
    return EXAMPLES_HEADER + "\n" + "\n\n".join(rows)


def with_examples(
    text: str, demos: Sequence[Sample], answers: Mapping[str, str] | None = None
) -> str:
    """The prompt with its Examples section replaced by ``demos``: before the first slot line in
    a template (the row's input stays last), else at the end."""
    rest, _ = split_examples(text)
    block = examples_block(demos, answers)
    lines = rest.splitlines()
    first_slot = next((i for i, line in enumerate(lines) if SLOT.search(line)), None)
    if first_slot is None:
        return f"{rest}\n\n{block}"
    before, after = "\n".join(lines[:first_slot]).strip(), "\n".join(lines[first_slot:])
    return "\n\n".join(part for part in (before, block, after) if part)


def _words(sample: Sample) -> set[str]:
    return set(re.findall(r"\w+", demo_input(sample).casefold()))


def similarity(a: Sample, b: Sample) -> float:
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def nearest(failures: Sequence[Sample], pool: Sequence[Sample], k: int) -> list[Sample]:
    """For each failure in turn (worst first), the most similar pool row not yet chosen."""
    chosen: list[Sample] = []
    for failure in failures:
        left = [s for s in pool if s not in chosen]
        if len(chosen) == k or not left:
            break
        chosen.append(max(left, key=lambda s: similarity(failure, s)))
    return chosen


def label_cover(
    failures: Sequence[Sample], pool: Sequence[Sample], rng: random.Random, k: int
) -> list[Sample]:
    """Every label once, then more of the labels the model gets wrong most often."""
    by_label: dict[str, list[Sample]] = {}
    for s in pool:
        by_label.setdefault(s.reference or "", []).append(s)
    missed = Counter(f.reference or "" for f in failures)
    labels = sorted(by_label, key=lambda lab: (-missed[lab], lab))
    worst = [lab for lab, _ in missed.most_common() if lab in by_label] or labels
    turns = labels + worst * k
    chosen: list[Sample] = []
    for label in turns:
        left = [s for s in by_label[label] if s not in chosen]
        if len(chosen) == k:
            break
        if left:
            chosen.append(rng.choice(left))
    return chosen


def candidate_sets(
    failures: Sequence[Sample], pool: Sequence[Sample], rng: random.Random, k: int = DEMOS
) -> dict[str, list[Sample]]:
    """Named demonstration sets, deduplicated; targeted first, then seeded mixes."""
    k = min(k, len(pool))
    similar = nearest(failures, pool, k)
    similar += [s for s in label_cover(failures, pool, rng, k) if s not in similar]
    ranked = sorted(pool, key=lambda s: -max((similarity(f, s) for f in failures), default=0.0))
    sets = {"similar": similar[:k], "labels": label_cover(failures, pool, rng, k)}
    for i in range(1, CANDIDATE_SETS * 2):
        if len(sets) >= CANDIDATE_SETS:
            break
        sets[f"mix{i}"] = rng.sample(ranked[: 2 * k], k)
    unique: dict[str, list[Sample]] = {}
    for name, demos in sets.items():
        if demos and {d.id for d in demos} not in [{d.id for d in u} for u in unique.values()]:
            unique[name] = demos
    return unique


def batch_and_pool(ctx: OptimizeContext, idx: int) -> tuple[list[Sample], list[Sample]]:
    """The step's evaluation batch and the run's demonstration pool: disjoint train rows."""
    return train_batch(ctx, idx), demo_pool(ctx)


def failing_samples(evaluation: Evaluation, batch: Sequence[Sample]) -> list[Sample]:
    """Rows below full marks, worst first (unscored and errors count as the worst)."""

    def value(s: Sample) -> float:
        v = evaluation.value(s.id)
        return -1.0 if v is None else v

    return sorted((s for s in batch if value(s) < 1.0), key=value)


def check_disjoint(demos: Sequence[Sample], batch: Sequence[Sample], ctx: OptimizeContext) -> None:
    """An invariant, not input validation: demonstrations never meet the rows they are scored on."""
    shown = {d.id for d in demos}
    scored = {s.id for s in [*batch, *ctx.split.val, *ctx.split.test]}
    if shown & scored:
        raise RuntimeError(f"few-shot demonstrations overlap scored rows: {sorted(shown & scored)}")


class FewShotStrategy(Strategy):
    """Add demonstrations chosen for the current failures; verify on val."""

    name = "fewshot"
    menu = "demonstrations from train aimed at the failures; no reasoner needed"
    needs_reference = True  # a demonstration shows the reference answer
    uses_reasoner = False
    chooser_line = "add worked examples from train aimed at the failing cases"

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        return (1 + CANDIDATE_SETS) * batch  # the parent and each demonstration set

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        idx = len(state.records)
        batch, pool = batch_and_pool(ctx, idx)
        record = step_record(
            self.name,
            idx,
            state,
        )
        if not pool:
            return record.model_copy(
                update={"reason": "few-shot needs train rows with reference answers"}
            )
        parent = await ctx.evaluate(state.best, batch)
        record = record.model_copy(update={"train_parent": parent.mean})
        failures = failing_samples(parent, batch)
        rng = random.Random(f"{ctx.config.seed}:fewshot-sets:{idx}")
        sets = self._fresh(candidate_sets(failures, pool, rng), state)
        names = list(sets)[: ctx.affordable(len(batch), len(sets))]
        if not names:
            return record.model_copy(update={"reason": "no new demonstration set fits the budget"})
        scores: dict[str, float | None] = {}
        for name in names:
            check_disjoint(sets[name], batch, ctx)
            prompt = PromptTemplate.from_text(with_examples(state.best.text, sets[name]))
            scores[name] = (await ctx.evaluate(prompt, batch)).mean
        best = max(names, key=lambda n: -1.0 if scores[n] is None else scores[n] or 0.0)
        chosen = PromptTemplate.from_text(with_examples(state.best.text, sets[best]))
        record = describe(record, best, sets[best], scores, state.best, chosen)
        return await verify(record, chosen, parent, batch, state, ctx)

    @staticmethod
    def _fresh(sets: dict[str, list[Sample]], state: LoopState) -> dict[str, list[Sample]]:
        seen = {r.prompt_hash for r in state.records[1:]}
        return {
            name: demos
            for name, demos in sets.items()
            if PromptTemplate.from_text(with_examples(state.best.text, demos)).hash not in seen
        }


def describe(
    record: IterationRecord,
    name: str,
    demos: list[Sample],
    scores: dict[str, float | None],
    parent: PromptTemplate,
    chosen: PromptTemplate,
) -> IterationRecord:
    labels = Counter(_one_line(d.reference or "", 24) for d in demos)
    return record.model_copy(
        update={
            "prompt_hash": chosen.hash,
            "prompt": chosen.text,
            "explanation": f"{len(demos)} train demonstrations, set {name!r} "
            f"({', '.join(f'{lab} x{n}' for lab, n in labels.most_common())})",
            "diff": prompt_diff(parent.text, chosen.text),
            "candidate_scores": scores,
            "demo_ids": [d.id for d in demos],
        }
    )
