"""The reasoning step: diagnose failures and propose a rewrite, within the model's context.

The reasoner sees the rubric, failing train examples with the judge's or metric's reasons,
the score trajectory and what every earlier change did. Its input is kept within its context
window by construction: examples are truncated and dropped, never the instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assay.engine.engine import Engine
from assay.errors import ProviderError
from assay.records import Completion, GenerationParams, Message, ModelConfig, Request
from assay.scoring.judge_parse import strip_reasoning

PROPOSE_RETRIES = 2  # a rewrite that does not parse is asked again, with the error, this often
CHARS_PER_TOKEN = 3  # conservative: real text runs ~4 characters a token
RETRY_RESERVE = 1400  # characters kept free for one round of parse-error feedback
FIELD_CAPS = {"input": 500, "response": 300, "reference": 200, "reason": 240, "trace": 600}

SYSTEM = (
    "You improve prompts for a language model. You study where the current prompt fails, "
    "name the failure patterns, and write a better prompt. You never copy examples into the "
    "prompt verbatim, and you keep every {{slot}} placeholder the prompt uses."
)

REPLY_FORMAT = """Reply in exactly this form, with nothing after it:
<diagnosis>the failure patterns you see, briefly</diagnosis>
<prompt>
the complete revised prompt
</prompt>
<explanation>one paragraph: what you changed and why it should help</explanation>"""


@dataclass(frozen=True)
class Example:
    input: str
    response: str
    reference: str | None
    score: float | None
    reason: str
    trace: str = ""  # a pipeline's steps for this example, rendered compactly


@dataclass(frozen=True)
class LogEntry:
    iteration: int
    explanation: str
    outcome: str  # "helped (+0.080, accepted)", "hurt (-0.050)", "rejected: leak", ...


@dataclass(frozen=True)
class ReasonerInput:
    prompt: str
    scoring: str
    target_model: str
    trajectory: list[float | None]
    log: list[LogEntry]
    examples: list[Example]
    n_failing: int
    slots: list[str]
    source_model: str | None = None


@dataclass(frozen=True)
class Proposal:
    diagnosis: str
    prompt: str
    explanation: str


@dataclass
class ProposalOutcome:
    proposal: Proposal | None
    error: str | None
    replies: list[str] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    examples_shown: int = 0


class ProposalParseError(ValueError):
    pass


def _cap(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(inp: ReasonerInput) -> str:
    source = (
        f"The prompt was written for {inp.source_model}; it now runs on {inp.target_model}."
        if inp.source_model
        else f"The prompt runs on {inp.target_model}."
    )
    slots = ", ".join("{{" + s + "}}" for s in inp.slots) or "none"
    return (
        f"## The task model\n{source}\nTemplate slots to keep: {slots}\n\n"
        f"## Current prompt\n<current_prompt>\n{inp.prompt}\n</current_prompt>\n\n"
        f"## How responses are scored\n{inp.scoring}\n\n"
        f"## Validation score so far\n{_trajectory(inp.trajectory)}\n\n"
        f"## What earlier changes did\n{_log(inp.log)}\n\n"
    )


def _trajectory(values: list[float | None]) -> str:
    parts = [f"{v:.3f}" if v is not None else "n/a" for v in values]
    return " -> ".join(parts) if parts else "not measured yet"


def _log(entries: list[LogEntry]) -> str:
    if not entries:
        return "No earlier changes."
    return "\n".join(
        f"{e.iteration}. {_cap(e.explanation, 200) or '(no explanation)'} => {e.outcome}"
        for e in entries[-8:]
    )


def _example(i: int, ex: Example) -> str:
    score = "unscored" if ex.score is None else f"{ex.score:.2f}"
    ref = f"Expected: {_cap(ex.reference, FIELD_CAPS['reference'])}\n" if ex.reference else ""
    steps = f"Pipeline steps:\n{_cap(ex.trace, FIELD_CAPS['trace'])}\n" if ex.trace else ""
    return (
        f"### Example {i} (score {score})\nInput: {_cap(ex.input, FIELD_CAPS['input'])}\n"
        f"{steps}Response: {_cap(ex.response, FIELD_CAPS['response'])}\n{ref}"
        f"Why: {_cap(ex.reason, FIELD_CAPS['reason'])}\n\n"
    )


def build_messages(
    inp: ReasonerInput, context_tokens: int, max_output_tokens: int
) -> tuple[tuple[Message, ...], int]:
    """The reasoning request and how many examples fit in the context budget."""
    budget_chars = (context_tokens - max_output_tokens - 64) * CHARS_PER_TOKEN - RETRY_RESERVE
    head = _header(inp)
    tail = f"## Your job\nDiagnose the failures, then rewrite the prompt.\n{REPLY_FORMAT}"
    room = budget_chars - len(SYSTEM) - len(head) - len(tail)
    shown: list[str] = []
    for i, ex in enumerate(inp.examples, start=1):
        block = _example(i, ex)
        if len(block) > room:
            break
        shown.append(block)
        room -= len(block)
    intro = f"## Failing examples ({len(shown)} of {inp.n_failing} on the train batch)\n"
    user = head + intro + ("".join(shown) or "None to show.\n\n") + tail
    return (Message(role="system", content=SYSTEM), Message(role="user", content=user)), len(shown)


_TAG = {
    name: re.compile(rf"<{name}>(.*?)</{name}>", re.DOTALL | re.IGNORECASE)
    for name in ("diagnosis", "prompt", "explanation")
}


def parse_proposal(text: str) -> Proposal:
    """The last <prompt> block wins; reasoning blocks are stripped first."""
    body = strip_reasoning(text)
    prompts = _TAG["prompt"].findall(body)
    if not prompts:
        raise ProposalParseError("no <prompt>...</prompt> block found")
    prompt = prompts[-1].strip()
    if not prompt:
        raise ProposalParseError("the <prompt> block is empty")
    return Proposal(
        diagnosis=_last(body, "diagnosis"), prompt=prompt, explanation=_last(body, "explanation")
    )


def _last(body: str, tag: str) -> str:
    found = _TAG[tag].findall(body)
    return found[-1].strip() if found else ""


async def propose(
    engine: Engine,
    model: ModelConfig,
    messages: tuple[Message, ...],
    params: GenerationParams,
    max_retries: int = PROPOSE_RETRIES,
) -> ProposalOutcome:
    """Ask, parse, and on a parse error ask again with the error fed back (bounded)."""
    outcome = ProposalOutcome(proposal=None, error=None)
    conversation = list(messages)
    for attempt in range(max_retries + 1):
        # A distinct repeat index per attempt: a retry must not be answered from the cache.
        request = Request(messages=tuple(conversation), params=params, repeat=attempt)
        try:
            completion = await engine.complete(model, request, purpose="reasoning")
        except ProviderError as exc:
            outcome.error = f"reasoning request failed: {exc}"
            return outcome
        outcome.completions.append(completion)
        outcome.replies.append(completion.text)
        try:
            outcome.proposal = parse_proposal(completion.text)
            outcome.error = None
            return outcome
        except ProposalParseError as exc:
            outcome.error = f"unparsable reasoner reply: {exc}"
            # Only the latest failure is fed back, so the context never grows past the reserve.
            conversation = [
                *messages,
                Message(role="assistant", content=_cap(completion.text, 600)),
                Message(
                    role="user", content=f"That reply could not be used: {exc}. {REPLY_FORMAT}"
                ),
            ]
    return outcome
