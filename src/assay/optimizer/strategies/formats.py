"""Output-format repair: how many answers the parser could not read, and prompts that say how
to answer.

A small model often knows roughly what to say but not how to say it: "No, I don't return to
the start" holds no ``True``/``False`` label, so the label metric scores it 0 whatever it
meant. When many of the best prompt's answers hold no label (or fail, or go unscored), the
cheapest fix is a prompt that states the answer format; ``screen`` tries these first.
"""

from __future__ import annotations

from collections.abc import Sequence

from assay.data.prompts import SLOT
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.split import MAX_STRATA
from assay.records import Sample
from assay.store.runstore import ResultRecord

FORMAT_FIRST = 0.25  # this share of unreadable answers puts format repair first
MAX_LABEL_CHARS = 40


def unreadable(evaluation: Evaluation) -> list[str]:
    """Sample ids whose answer the metric could not read: a failed request, an unscored
    answer, or (label metric) an answer that holds no label."""
    return [i for i, r in evaluation.results.items() if _unreadable(r, evaluation.primary)]


def _unreadable(result: ResultRecord, primary: str) -> bool:
    score = result.scores.get(primary)
    if result.error is not None or score is None or not score.is_scored:
        return True
    return "predicted" in score.details and score.details["predicted"] is None


def unreadable_share(evaluation: Evaluation) -> float:
    return len(unreadable(evaluation)) / len(evaluation.results) if evaluation.results else 0.0


def label_set(train: Sequence[Sample]) -> list[str]:
    """The answer labels train shows, when its references are a small set of short labels."""
    labels = sorted({" ".join((s.reference or "").split()) for s in train} - {""})
    if not 2 <= len(labels) <= MAX_STRATA or max(map(len, labels)) > MAX_LABEL_CHARS:
        return []
    return labels


def answer_instruction(labels: Sequence[str]) -> str:
    if len(labels) == 2:
        return f"Answer with one word: {labels[0]} or {labels[1]}."
    return f"Answer with exactly one of: {', '.join(labels)}."


def answer_cue(labels: Sequence[str]) -> str:
    return f"Answer ({' or '.join(labels)}):" if len(labels) <= 4 else "Answer:"


def format_variants(text: str, labels: Sequence[str]) -> dict[str, str]:
    """Prompts that state the answer format, by name; none without labels.

    In a template the instruction can follow the row's input (small models weigh the last line
    most) or precede it; a system prompt can only add it at the end.
    """
    if not labels:
        return {}
    rule, cue = answer_instruction(labels), answer_cue(labels)
    strict = f"{rule} Do not explain; write the label only."
    lines = text.rstrip().splitlines()
    first_slot = next((i for i, line in enumerate(lines) if SLOT.search(line)), None)
    if first_slot is None:
        body = text.rstrip()
        return {"format_rule": f"{body}\n\n{rule}", "format_strict": f"{body}\n\n{strict}"}
    before = "\n".join(lines[:first_slot]).rstrip()
    after = "\n".join(lines[first_slot:])
    return {
        "format_cue": f"{text.rstrip()}\n\n{rule}\n{cue}",
        "format_rule": f"{text.rstrip()}\n\n{rule}",
        "format_first": "\n\n".join(p for p in (before, strict, after) if p),
    }
