"""Replies shaped like the openai SDK's ``ChatCompletion``: the attributes agent code reads
(``choices[0].message.content``, ``choices[0].finish_reason``, ``usage.prompt_tokens``, ``model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assay.records import Completion


@dataclass(frozen=True)
class ChatMessage:
    content: str
    role: str = "assistant"
    tool_calls: None = None  # Assay's client sends no tools, so a reply never calls one


@dataclass(frozen=True)
class Choice:
    message: ChatMessage
    index: int = 0
    finish_reason: str | None = "stop"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatCompletion:
    id: str
    model: str
    choices: list[Choice]
    usage: Usage
    cached: bool = False  # served from Assay's response cache
    object: str = field(default="chat.completion")


def chat_completion(completion: Completion, call_id: str) -> ChatCompletion:
    choice = Choice(ChatMessage(completion.text), finish_reason=completion.finish_reason or "stop")
    return ChatCompletion(
        id=call_id,
        model=completion.model_served,
        choices=[choice],
        usage=Usage(completion.input_tokens, completion.output_tokens),
        cached=completion.cached,
    )
