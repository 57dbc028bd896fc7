"""Checks every candidate prompt must pass before it is evaluated. Each returns a reason or None."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from assay.data.prompts import PromptTemplate
from assay.records import Sample

LEAK_WORDS = 8  # a run of this many words copied from a held-out row is a leak
SPAN_CHARS = 160  # a rejection quotes at most this much of the copied text
MIN_PROMPT_CHARS = 8


def check_candidate(
    candidate: PromptTemplate,
    parent: PromptTemplate,
    held_out: Sequence[Sample],
    train_references: Iterable[str],
    *,
    train: Sequence[Sample] = (),
) -> str | None:
    """The first problem found, or None when the candidate may be evaluated. ``train`` are the
    rows a candidate may quote: text they share with held-out rows is not a leak."""
    for check in (
        _empty(candidate),
        _unchanged(candidate, parent),
        _missing_slots(candidate, parent),
        _leak(candidate, parent, held_out, set(train_references), train),
    ):
        if check:
            return check
    return None


def _empty(candidate: PromptTemplate) -> str | None:
    if len(candidate.text.strip()) < MIN_PROMPT_CHARS:
        return "empty or truncated prompt"
    return None


def _unchanged(candidate: PromptTemplate, parent: PromptTemplate) -> str | None:
    if " ".join(candidate.text.split()) == " ".join(parent.text.split()):
        return "no change from the current prompt"
    return None


def _missing_slots(candidate: PromptTemplate, parent: PromptTemplate) -> str | None:
    missing = [s for s in parent.slots if s not in candidate.slots]
    if missing:
        return "drops template slots the data needs: " + ", ".join(f"{{{{{s}}}}}" for s in missing)
    extra = [s for s in candidate.slots if s not in parent.slots]
    if extra:
        return "adds template slots the data may not have: " + ", ".join(extra)
    return None


Shingle = tuple[str, ...]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _shingles(words: list[str], n: int) -> set[Shingle]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _leak(
    candidate: PromptTemplate,
    parent: PromptTemplate,
    held_out: Sequence[Sample],
    train_refs: set[str],
    train: Sequence[Sample],
) -> str | None:
    """Text specific to one val/test row: a run of LEAK_WORDS words of its input that neither a
    train row nor the parent prompt holds (template text the rows share is in train too), or a
    reference of 3+ words that no train row has as its reference or holds in its input."""
    quotable = [parent.text, *(s.input_text() for s in train)]
    shared: set[Shingle] = set()
    for text in quotable:
        shared |= _shingles(_words(text), LEAK_WORDS)
    matches = list(re.finditer(r"\w+", candidate.text))
    words = [m.group().casefold() for m in matches]
    own = _shingles(words, LEAK_WORDS) - shared
    known = " | ".join(" ".join(_words(t)) for t in quotable)
    copied = {s.id: own & _shingles(_words(s.input_text()), LEAK_WORDS) for s in held_out}
    source = max(held_out, key=lambda s: len(copied[s.id]), default=None)
    if source is not None and copied[source.id]:  # the row it copies most from
        span = _span(candidate.text, matches, words, copied[source.id])
        return f"copies text specific to held-out sample {source.id} (a leak): {span!r}"
    for sample in held_out:
        if _reference_leaks(sample, words, train_refs, known):
            return (
                f"contains the reference answer of held-out sample {sample.id} (a leak): "
                f"{sample.reference!r}"
            )
    return None


def _reference_leaks(sample: Sample, words: list[str], train_refs: set[str], known: str) -> bool:
    ref = " ".join(_words(sample.reference or ""))
    if sample.reference in train_refs or len(ref.split()) < 3:
        return False  # a label every split shares, or too short to be specific
    return f" {ref} " in f" {' '.join(words)} " and f" {ref} " not in f" {known} "


def _span(text: str, matches: list[re.Match[str]], words: list[str], copied: set[Shingle]) -> str:
    """The candidate's own text of its longest run of copied shingles, cut to SPAN_CHARS."""
    starts = sorted(i for i in range(len(words)) if tuple(words[i : i + LEAK_WORDS]) in copied)
    runs: list[tuple[int, int]] = []  # (first, last) start of each run of consecutive shingles
    for i in starts:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    first, last = max(runs, key=lambda run: run[1] - run[0])
    span = " ".join(text[matches[first].start() : matches[last + LEAK_WORDS - 1].end()].split())
    return span if len(span) <= SPAN_CHARS else span[: SPAN_CHARS - 1] + "…"
