"""Why a judgement is missing: the causes a run's breakdown counts, with what to do about each.

Kept apart from the judge itself so that reading a run's figures does not load the engine.
"""

from __future__ import annotations

from typing import NamedTuple

from assay.scoring.judge_parse import BAD_VERDICT, NO_VERDICT

__all__ = [
    "BAD_VERDICT",
    "CONTEXT_OVERFLOW",
    "CUT_OFF",
    "JUDGE_CONTEXT_HINT",
    "NO_VERDICT",
    "REFUSAL",
    "REQUEST_ERROR",
    "UNRECORDED",
    "UNSCORED_CAUSES",
    "UnscoredCause",
]

JUDGE_CONTEXT_HINT = (
    "lower --judge-max-tokens, shorten the rubric or the responses, or use a judge with a "
    "larger context"
)


class UnscoredCause(NamedTuple):
    """Why judgements went missing, as a run's breakdown shows it, and what to do about it."""

    label: str
    hint: str


CONTEXT_OVERFLOW = "context_overflow"
CUT_OFF = "cut_off"
REFUSAL = "refusal"
REQUEST_ERROR = "error"
UNRECORDED = "unrecorded"
UNSCORED_CAUSES: dict[str, UnscoredCause] = {
    CONTEXT_OVERFLOW: UnscoredCause(
        "context overflow",
        "the judge's prompt (rubric, input, response) and its reply did not fit its context: "
        + JUDGE_CONTEXT_HINT,
    ),
    CUT_OFF: UnscoredCause(
        "reply cut off",
        "the judge reached its token cap before its verdict line: raise --judge-max-tokens",
    ),
    NO_VERDICT: UnscoredCause(
        "no verdict line",
        "the judge did not end with a 'VERDICT: N' line: try a stronger judge model, or a "
        "shorter rubric that states the output format",
    ),
    BAD_VERDICT: UnscoredCause(
        "verdict off the scale",
        "the judge's verdict was not on the rubric's scale: state the scale in the rubric "
        "(e.g. 'Scale: 1-5')",
    ),
    REFUSAL: UnscoredCause(
        "refusal", "the judge refused to grade: check the rubric and the data, or use another judge"
    ),
    REQUEST_ERROR: UnscoredCause(
        "request error", "judge requests failed after retries: each one's error is recorded"
    ),
    UNRECORDED: UnscoredCause("cause not recorded", "the run predates unscored causes"),
}
"""Why a judgement is missing (the key a Score's ``unscored_cause`` holds) -> label and hint."""
