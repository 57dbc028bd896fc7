"""A scripted task model that rewards one instruction, and a scripted reasoning model."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from assay.data import demo_path, load_dataset
from assay.testing import Action, ChatRequest, ScriptedServer, reply

MAGIC = "Answer with exactly one word"
POISON = "long story"  # a prompt containing this makes the task model almost always wrong
FLIP = {"positive": "negative", "negative": "positive"}


def proposal(prompt: str, *, think: bool = False, explanation: str = "clearer format") -> str:
    thinking = "<think>Maybe <prompt>not this one</prompt></think>\n" if think else ""
    return (
        f"{thinking}<diagnosis>answers ramble</diagnosis>\n<prompt>\n{prompt}\n</prompt>\n"
        f"<explanation>{explanation}</explanation>"
    )


class OptimizeZoo:
    """``task`` is right ~90% of the time with MAGIC in its system prompt, ~5% with POISON, else
    ~40%.

    ``reasoner`` replies from a plan (a list of texts, or a function of the request index);
    its last reply repeats. Every request is logged in arrival order.
    """

    def __init__(self, plan: list[str] | Callable[[int], str], delay: float = 0.0) -> None:
        samples = load_dataset(demo_path("sentiment.jsonl")).samples
        self.truth = {s.input_text(): s.reference or "" for s in samples}
        self.plan = plan
        self.delay = delay
        self.log: list[tuple[str, str, str]] = []  # (model, system prompt, last user text)
        self.reasoner_requests: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Action:
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
        with self._lock:
            self.log.append((request.model, system, request.last_user_text))
            if request.model == "reasoner":
                self.reasoner_requests.append(request.last_user_text)
                index = len(self.reasoner_requests) - 1
        if request.model == "reasoner":
            return reply(self._planned(index), input_tokens=500, output_tokens=80)
        return self._answer(system, request.last_user_text)

    def _planned(self, index: int) -> str:
        if callable(self.plan):
            return self.plan(index)
        return self.plan[min(index, len(self.plan) - 1)]

    def _answer(self, system: str, text: str) -> Action:
        accuracy = 90 if MAGIC.lower() in system.lower() else 40
        if POISON in system.lower():
            accuracy = 5
        right = hashlib.sha256(f"{system}|{text}".encode()).digest()[0] % 100 < accuracy
        truth = self.truth.get(text, "positive")
        return reply(
            truth if right else FLIP[truth], input_tokens=30, output_tokens=1, delay=self.delay
        )


def small_dataset(path: Path, n: int = 60) -> Path:
    rows = [json.loads(line) for line in demo_path("sentiment.jsonl").read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
    return path


def optimize_args(srv: ScriptedServer, data: Path, *extra: str) -> list[str]:
    """``assay optimize`` on the scripted zoo: the task and reasoner behind ``srv``, iterative."""
    return [
        "optimize",
        str(data),
        str(demo_path("sentiment_prompt.md")),
        "-m",
        "compat/task",
        "--base-url",
        srv.base_url,
        "--reasoning-model",
        "compat/reasoner",
        "--reasoning-base-url",
        srv.base_url,
        "--metric",
        "label",
        "--batch-size",
        "8",
        "--strategy",
        "iterative",
        "--json",
        *extra,
    ]
