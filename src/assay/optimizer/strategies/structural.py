"""Structural rewrites: the same instructions in another layout, tried on one train batch.

Small models react to layout as much as to wording. Deterministic transforms (markdown
sections, XML tags, role/task/format, constraints first, flat prose, input-anchored) and one
optional reasoner-guided layout are evaluated on the same train batch; the best of them goes
through the usual check (guards, batch, val) and is kept only if it beats the best prompt on val.
Lines holding ``{{slots}}`` are moved whole, never rewritten, so every slot survives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from assay.data.prompts import SLOT, PromptTemplate
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.guards import check_candidate
from assay.optimizer.reasoner import CHARS_PER_TOKEN, build_messages, propose
from assay.optimizer.records import IterationRecord, prompt_diff
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.common import failing_examples, step_record, train_batch, verify
from assay.optimizer.strategies.fewshot import split_examples
from assay.optimizer.strategies.iterative import IterativeStrategy
from assay.records import GenerationParams, Message, Sample

ANCHOR = "The input follows; answer about it:"
DEFAULT_ROLE = "You are a careful assistant that follows these instructions exactly."
LAYOUT_HINT = (
    "\nFocus on layout: keep the instructions' meaning, but change how the prompt is "
    "organised (sections, order, where the output format is stated)."
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TAG = re.compile(r"</?(?:role|task|constraints|output_format|input)>")  # only our own tags
_BULLET = re.compile(r"^(?:[-*•]|\d+[.)])\s+")
_LABEL = re.compile(r"^(?:role|task|format|output format|constraints|input)\s*:\s*", re.I)
_ROLE = re.compile(r"^(?:you are|you're|act as|as an? )", re.I)
_OUTPUT = re.compile(
    r"\b(?:answer|reply|respond|output|return|format|label|one word|json|write only)\b", re.I
)
_CONSTRAINT = re.compile(
    r"\b(?:must|never|always|do not|don't|only|exactly|avoid|at most|no more than)\b", re.I
)


@dataclass
class Parts:
    """A prompt cut into kinds of sentences; ``inputs`` are the slot lines, verbatim."""

    role: list[str] = field(default_factory=list)
    task: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    examples: str = ""  # a few-shot Examples section, kept whole

    @property
    def instructions(self) -> list[str]:
        return [*self.role, *self.task, *self.constraints, *self.output]


def classify(sentence: str) -> str:
    if _ROLE.match(sentence):
        return "role"
    if _OUTPUT.search(sentence):
        return "output"
    if _CONSTRAINT.search(sentence):
        return "constraints"
    return "task"


def split_parts(text: str) -> Parts:
    """Sentences by kind; scaffolding from an earlier layout (headers, tags, labels) is dropped."""
    rest, examples = split_examples(text)
    parts = Parts(examples=examples)
    for raw in rest.splitlines():
        if SLOT.search(raw):
            parts.inputs.append(_TAG.sub("", raw).strip())
            continue
        line = _LABEL.sub("", _BULLET.sub("", _TAG.sub("", raw).strip()))
        if not line or line.startswith("#") or line == ANCHOR:
            continue
        for sentence in _SENTENCE_END.split(line):
            getattr(parts, classify(sentence)).append(sentence)
    return parts


def _join(*blocks: str) -> str:
    return "\n\n".join(b for b in blocks if b.strip())


def _prose(lines: list[str]) -> str:
    return " ".join(lines)


def _inputs(p: Parts) -> str:
    return "\n".join(p.inputs)


def sections(p: Parts) -> str:
    named = [
        ("## Role", _prose(p.role)),
        ("## Task", _prose(p.task)),
        ("## Constraints", "\n".join(f"- {c}" for c in p.constraints)),
        ("## Output format", _prose(p.output)),
    ]
    body = [f"{head}\n{text}" for head, text in named if text]
    tail = f"## Input\n{_inputs(p)}" if p.inputs else ""
    return _join(*body, p.examples, tail)


def xml_tags(p: Parts) -> str:
    named = [
        ("role", _prose(p.role)),
        ("task", _prose(p.task)),
        ("constraints", _prose(p.constraints)),
        ("output_format", _prose(p.output)),
    ]
    body = "\n".join(f"<{tag}>{text}</{tag}>" for tag, text in named if text)
    tail = f"<input>\n{_inputs(p)}\n</input>" if p.inputs else ""
    return _join(body, p.examples, tail)


def role_task_format(p: Parts) -> str:
    lines = [
        f"Role: {_prose(p.role) or DEFAULT_ROLE}",
        f"Task: {_prose([*p.task, *p.constraints])}" if p.task or p.constraints else "",
        f"Format: {_prose(p.output)}" if p.output else "",
    ]
    return _join("\n".join(line for line in lines if line), p.examples, _inputs(p))


def constraints_first(p: Parts) -> str:
    return _join(
        _prose([*p.constraints, *p.output]), _prose([*p.role, *p.task]), p.examples, _inputs(p)
    )


def flat_prose(p: Parts) -> str:
    return _join(_prose(p.instructions), p.examples, _inputs(p))


def input_anchored(p: Parts) -> str:
    anchor = f"{ANCHOR}\n{_inputs(p)}" if p.inputs else ANCHOR
    return _join(_prose(p.instructions), p.examples, anchor)


TRANSFORMS: dict[str, Callable[[Parts], str]] = {
    "sections": sections,
    "xml": xml_tags,
    "role_task_format": role_task_format,
    "constraints_first": constraints_first,
    "flat": flat_prose,
    "input_anchored": input_anchored,
}


def layout_variants(text: str) -> dict[str, str]:
    """Every deterministic layout of ``text`` that differs from it (by more than whitespace)."""
    parts = split_parts(text)
    if not parts.instructions:
        return {}
    same = " ".join(text.split())
    variants = {name: transform(parts) for name, transform in TRANSFORMS.items()}
    return {name: v for name, v in variants.items() if " ".join(v.split()) != same}


def tried_hashes(state: LoopState) -> set[str]:
    """Prompts an earlier step already proposed (whatever became of them)."""
    return {r.prompt_hash for r in state.records[1:]}


def usable(
    variants: dict[str, str], state: LoopState, ctx: OptimizeContext
) -> dict[str, PromptTemplate]:
    """Variants that pass the guards and were not proposed before, deduplicated."""
    held_out = [*ctx.split.val, *ctx.split.test]
    refs = [s.reference for s in ctx.split.train if s.reference]
    seen = tried_hashes(state)
    kept: dict[str, PromptTemplate] = {}
    for name, text in variants.items():
        candidate = PromptTemplate.from_text(text)
        if candidate.hash in seen or check_candidate(
            candidate, state.best, held_out, refs, train=ctx.split.train
        ):
            continue
        seen.add(candidate.hash)
        kept[name] = candidate
    return kept


async def best_on_batch(
    candidates: dict[str, PromptTemplate], batch: list[Sample], ctx: OptimizeContext
) -> tuple[str, dict[str, float | None]]:
    """Evaluate as many candidates as the budget allows; the name of the best and every mean."""
    names = list(candidates)[: ctx.affordable(len(batch), len(candidates))]
    scores: dict[str, float | None] = {}
    for name in names:
        scores[name] = (await ctx.evaluate(candidates[name], batch)).mean
    best = max(names, key=lambda n: -1.0 if scores[n] is None else scores[n] or 0.0, default="")
    return best, scores


class StructuralStrategy(Strategy):
    """Try the best prompt in several layouts on one train batch; verify the best layout."""

    name = "structural"
    menu = "the same instructions in other layouts (sections, XML, format first, ...)"
    chooser_line = "try the same instructions in other layouts (sections, tags, format first)"

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        return (1 + len(TRANSFORMS) + 1) * batch  # the parent, each layout, the reasoner's layout

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        idx = len(state.records)
        batch = train_batch(ctx, idx)
        parent = await ctx.evaluate(state.best, batch)
        variants = layout_variants(state.best.text)
        guided, replies, diagnosis = await self._guided(state, ctx, parent, batch)
        if guided:
            variants["reasoner"] = guided
        record = step_record(
            self.name,
            idx,
            state,
            parent.mean,
            diagnosis=diagnosis,
            reasoner_replies=replies,
        )
        candidates = usable(variants, state, ctx)
        if not candidates:
            return record.model_copy(update={"reason": "no new layout to try"})
        name, scores = await best_on_batch(candidates, batch, ctx)
        if not name:
            return record.model_copy(update={"reason": "the budget leaves no room for a layout"})
        chosen = candidates[name]
        record = record.model_copy(
            update={
                "prompt_hash": chosen.hash,
                "prompt": chosen.text,
                "explanation": f"layout {name!r} (best of {len(scores)} on the train batch)",
                "diff": prompt_diff(state.best.text, chosen.text),
                "candidate_scores": scores,
            }
        )
        return await verify(record, chosen, parent, batch, state, ctx)

    @staticmethod
    async def _guided(
        state: LoopState, ctx: OptimizeContext, parent: Evaluation, batch: list[Sample]
    ) -> tuple[str | None, list[str], str]:
        """One reasoner-written layout; optional, so a single attempt and no retries."""
        examples = failing_examples(parent, batch)
        hint_tokens = len(LAYOUT_HINT) // CHARS_PER_TOKEN + 1
        messages, _ = build_messages(
            IterativeStrategy._input(state, ctx, examples),
            ctx.config.context_tokens - hint_tokens,
            ctx.config.reasoning_max_tokens,
        )
        system, user = messages
        messages = (system, Message(role="user", content=user.content + LAYOUT_HINT))
        params = GenerationParams(
            max_tokens=ctx.config.reasoning_max_tokens, temperature=0.0, seed=ctx.config.seed
        )
        outcome = await propose(ctx.engine, ctx.config.reasoner, messages, params, max_retries=0)
        if outcome.proposal is None:
            return None, outcome.replies, ""
        return outcome.proposal.prompt, outcome.replies, outcome.proposal.diagnosis
