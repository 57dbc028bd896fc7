"""Will the judge's prompt fit its context? A pre-flight check, made before any call.

The judge reads its instructions and the rubric, the task input and reference (between tags)
and a response of up to the task's ``max_tokens``, and then writes up to its own
``max_tokens``. When the context size of a judge model is known (an embedded model's slot)
and that sum does not fit, every long item would end as "context overflow": say so before
spending anything. Tokens are estimated at a stated rule of thumb; a remote model's context is
not known here, so it gets no warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from assay.engine.accounting import MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS
from assay.errors import UserInputError
from assay.records import ModelConfig, Sample
from assay.scoring.judge import (
    JudgeConfig,
    judge_system_prompt,
    judge_user_prompt,
    verdict_contract,
)
from assay.scoring.judge_parse import detect_dimensions, detect_scale
from assay.scoring.unscored import JUDGE_CONTEXT_HINT

CHARS_PER_TOKEN = 4  # a rough, stated rule for estimates only (as the run's plan uses)
_FRAMING_TOKENS = 2 * MESSAGE_OVERHEAD_TOKENS + REQUEST_OVERHEAD_TOKENS


def known_context_tokens(model: ModelConfig) -> int | None:
    """The context one request may fill, where Assay knows it: an embedded (local) model's
    slot (its ``n_ctx`` per parallel request). None for other models."""
    if model.is_local:
        from assay.providers.local import SLOT_CONTEXT

        return SLOT_CONTEXT
    return None


@dataclass(frozen=True)
class JudgeFit:
    """The estimated size of the largest judge request next to the judge's context."""

    model: str
    context_tokens: int
    instructions_tokens: int  # judging instructions and the rubric (the system message)
    data_tokens: int  # the longest task input and reference, with their tags
    response_tokens: int  # the longest response: the task's max_tokens
    reply_tokens: int  # the judge's own reply: its max_tokens

    @property
    def needed_tokens(self) -> int:
        parts = (self.instructions_tokens, self.data_tokens, self.response_tokens)
        return sum(parts) + self.reply_tokens + _FRAMING_TOKENS

    @property
    def fits(self) -> bool:
        return self.needed_tokens <= self.context_tokens

    def warning(self) -> str:
        return (
            f"the judge {self.model} has a {self.context_tokens:,}-token context, but its "
            f"largest request needs about {self.needed_tokens:,}: rubric and instructions "
            f"~{self.instructions_tokens:,}, longest input and reference "
            f"~{self.data_tokens:,}, a response of up to {self.response_tokens:,} "
            f"(--max-tokens) and the judge's reply of up to {self.reply_tokens:,} "
            f"(--judge-max-tokens). Expect context overflows ({JUDGE_CONTEXT_HINT})"
        )


def judge_fits(
    config: JudgeConfig, samples: Iterable[Sample], response_max_tokens: int | None
) -> list[JudgeFit]:
    """One estimate per judge model whose context is known (none when no context is known)."""
    contexts = {m.spec: known_context_tokens(m) for m in config.models}
    known = {spec: n for spec, n in contexts.items() if n is not None}
    if not known:
        return []
    try:
        scale = config.scale or detect_scale(config.rubric)
        dimensions = list(config.dimensions) or detect_dimensions(config.rubric)
    except UserInputError:  # building the judge reports a bad rubric, in its own words
        return []
    contract = verdict_contract(scale, dimensions)
    instructions = _tokens(len(judge_system_prompt(config.rubric, scale, dimensions)))
    data = _tokens(max((len(judge_user_prompt(s, "", contract)) for s in samples), default=0))
    return [
        JudgeFit(spec, n, instructions, data, response_max_tokens or 0, config.max_tokens)
        for spec, n in known.items()
    ]


def judge_fit_warnings(
    config: JudgeConfig | None, samples: Iterable[Sample], response_max_tokens: int | None
) -> list[str]:
    """A warning for each judge whose largest request would not fit its context."""
    if config is None:
        return []
    return [
        fit.warning() for fit in judge_fits(config, samples, response_max_tokens) if not fit.fits
    ]


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)
