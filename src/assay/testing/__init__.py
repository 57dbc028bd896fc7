"""Test helpers shipped with Assay: a scripted OpenAI-compatible server for fault injection."""

from assay.testing.batch_endpoints import BatchScript
from assay.testing.rate_limit import TokenBucket
from assay.testing.scripted_server import (
    Action,
    ChatRequest,
    Handler,
    ScriptedServer,
    attempt_key_of,
    by_content,
    constant,
    echo,
    error,
    fail_then_reply,
    hang,
    no_choices,
    raw,
    reply,
    reset,
    sequence,
    stream,
)

__all__ = [
    "Action",
    "BatchScript",
    "ChatRequest",
    "Handler",
    "ScriptedServer",
    "TokenBucket",
    "attempt_key_of",
    "by_content",
    "constant",
    "echo",
    "error",
    "fail_then_reply",
    "hang",
    "no_choices",
    "raw",
    "reply",
    "reset",
    "sequence",
    "stream",
]
