"""Demonstration sets for screening, after DSPy's BootstrapFewShot: the model's own correct
outputs on train rows, and labelled rows.

A bootstrapped demonstration shows what the task model itself wrote when it was right, so the
examples are in the model's own format and the parser already reads them. Labelled ones show
the reference; they cover the labels the model never gets right yet. Every demonstration comes
from the run's demonstration pool (``common.demo_pool``): train rows no prompt is scored on. To
bootstrap, the best prompt answers pool rows; a row it already shows as a demonstration is
never among them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from assay.data.prompts import PromptTemplate
from assay.optimizer.context import OptimizeContext
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.strategies.common import DEMOS
from assay.optimizer.strategies.fewshot import (
    _DEMO_LINE,
    demo_input,
    label_cover,
    nearest,
    split_examples,
    with_examples,
)
from assay.records import Sample

BOOT_ROWS = 12  # pool rows the best prompt answers to bootstrap from
DEMO_SETS = 3


@dataclass(frozen=True)
class DemoSet:
    name: str
    demos: tuple[Sample, ...]
    answers: Mapping[str, str] = field(default_factory=dict)  # row id -> the model's own answer

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.demos]

    @property
    def bootstrapped(self) -> int:
        return sum(d.id in self.answers for d in self.demos)

    def apply(self, text: str) -> str:
        """``text`` with its Examples section replaced by this set."""
        return with_examples(text, self.demos, self.answers)


def shown_rows(text: str, pool: Sequence[Sample]) -> set[str]:
    """Pool rows the prompt already shows as demonstrations (read from its Examples section, so
    a rewrite that kept the section is covered too)."""
    _, section = split_examples(text)
    inputs = {
        line.removeprefix(_DEMO_LINE[0]).strip()
        for line in section.splitlines()
        if line.startswith(_DEMO_LINE[0])
    }
    return {s.id for s in pool if demo_input(s) in inputs}


async def own_answers(
    ctx: OptimizeContext, parent: PromptTemplate, pool: Sequence[Sample]
) -> dict[str, str]:
    """The parent's correct answers on pool rows it does not show, by row id."""
    shown = shown_rows(parent.text, pool)
    rows = [s for s in pool if s.id not in shown][:BOOT_ROWS]
    rows = rows[: ctx.affordable(1, len(rows))]
    if not rows:
        return {}
    evaluation = await ctx.evaluate(parent, rows)
    return correct_outputs(evaluation)


def correct_outputs(evaluation: Evaluation) -> dict[str, str]:
    answers = {}
    for sample_id, result in evaluation.results.items():
        text = result.completion.text.strip() if result.completion else ""
        if evaluation.value(sample_id) == 1.0 and text:
            answers[sample_id] = text
    return answers


def label_balanced(rows: Sequence[Sample], k: int) -> list[Sample]:
    """Up to ``k`` rows, taking the labels in turn so that no label crowds the others out."""
    by_label: dict[str, list[Sample]] = {}
    for s in rows:
        by_label.setdefault(s.reference or "", []).append(s)
    chosen: list[Sample] = []
    while len(chosen) < k and any(by_label.values()):
        for label in sorted(by_label):
            if by_label[label] and len(chosen) < k:
                chosen.append(by_label[label].pop(0))
    return chosen


def demo_sets(
    pool: Sequence[Sample],
    own: Mapping[str, str],
    failures: Sequence[Sample],
    rng: random.Random,
    k: int = DEMOS,
) -> list[DemoSet]:
    """Bootstrapped (own correct answers, topped up with labelled rows for missing labels),
    labelled (every label, then the ones the model misses), and nearest to the failures."""
    k = min(k, len(pool))
    if k == 0:
        return []
    sets = []
    correct = [s for s in pool if s.id in own]
    if len(correct) >= 2:
        boot = label_balanced(correct, k)
        missing = {s.reference for s in pool} - {s.reference for s in boot}
        boot += label_balanced([s for s in pool if s.reference in missing], k - len(boot))
        sets.append(DemoSet("bootstrapped", tuple(boot), dict(own)))
    sets.append(DemoSet("labelled", tuple(label_cover(failures, pool, rng, k))))
    similar = nearest(failures, pool, k)
    similar += [s for s in label_balanced(pool, k) if s not in similar]
    sets.append(DemoSet("similar", tuple(similar[:k]), dict(own)))
    return _distinct(sets)[:DEMO_SETS]


def _distinct(sets: list[DemoSet]) -> list[DemoSet]:
    seen: list[frozenset[str]] = []
    kept = []
    for demo_set in sets:
        key = frozenset(demo_set.ids)
        if demo_set.demos and key not in seen:
            seen.append(key)
            kept.append(demo_set)
    return kept
