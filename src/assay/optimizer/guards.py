"""Checks every candidate prompt must pass before it is evaluated. Each returns a reason or None."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from assay.data.prompts import PromptTemplate
from assay.records import Sample

LEAK_WORDS = 8  # a run of this many words copied from a held-out row is a leak
MIN_PROMPT_CHARS = 8


def check_candidate(
    candidate: PromptTemplate,
    parent: PromptTemplate,
    held_out: Sequence[Sample],
    train_references: Iterable[str],
) -> str | None:
    """The first problem found, or None when the candidate may be evaluated."""
    for check in (
        _empty(candidate),
        _unchanged(candidate, parent),
        _missing_slots(candidate, parent),
        _leak(candidate, held_out, set(train_references)),
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


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _shingles(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _leak(
    candidate: PromptTemplate, held_out: Sequence[Sample], train_refs: set[str]
) -> str | None:
    """Verbatim text from val/test inputs, or a val/test reference that train never shows."""
    prompt_words = _words(candidate.text)
    prompt_shingles = _shingles(prompt_words, LEAK_WORDS)
    lowered = " ".join(prompt_words)
    for sample in held_out:
        if prompt_shingles & _shingles(_words(sample.input_text()), LEAK_WORDS):
            return f"copies text from held-out sample {sample.id} (a leak)"
        ref = sample.reference
        novel = ref and ref not in train_refs and len(_words(ref)) >= 3
        if novel and " ".join(_words(ref or "")) in lowered:
            return f"contains the reference answer of held-out sample {sample.id} (a leak)"
    return None
