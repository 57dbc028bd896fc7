"""A deterministic scripted 'model zoo' for run and optimize tests."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from assay.data import demo_path, load_dataset
from assay.testing import Action, ChatRequest, reply

FLIP = {"positive": "negative", "negative": "positive"}


class LabelZoo:
    """Answers sentiment items: model ``acc90`` is right on ~90% of items, ``acc60`` on ~60%.

    Each decision is a hash of (model, input), so reruns and resumes see identical replies.
    Records what it answered, so tests compute the expected table from what the server did.
    """

    def __init__(self, delays: dict[str, float] | None = None, tokens: tuple[int, int] = (40, 2)):
        samples = load_dataset(demo_path("sentiment.jsonl")).samples
        self.truth = {s.input_text(): s.reference or "" for s in samples}
        self.delays = delays or {}
        self.tokens = tokens
        self.correct: dict[tuple[str, str], bool] = {}
        self.arrivals: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def accuracy_of(self, model: str) -> int:
        return int(model.removeprefix("acc")) if model.startswith("acc") else 50

    def __call__(self, request: ChatRequest) -> Action:
        text = request.last_user_text
        digest = hashlib.sha256(f"{request.model}|{text}".encode()).digest()
        right = digest[0] % 100 < self.accuracy_of(request.model)
        truth = self.truth.get(text, "positive")
        with self._lock:
            self.correct[(request.model, text)] = right
            self.arrivals[(request.model, text)] += 1
        answer = truth if right else FLIP[truth]
        return reply(
            answer,
            input_tokens=self.tokens[0],
            output_tokens=self.tokens[1],
            delay=self.delays.get(request.model, 0.0),
        )


def write_prices(path: Path, base_url_models: dict[str, tuple[float, float]]) -> Path:
    prices = {
        f"compat/{m}": {"input_per_mtok": i, "output_per_mtok": o}
        for m, (i, o) in base_url_models.items()
    }
    path.write_text(json.dumps({"prices": prices}))
    return path


def assay(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (the store comes from $ASSAY_STORE)."""
    return subprocess.run(
        [sys.executable, "-m", "assay", *args], capture_output=True, text=True, timeout=timeout
    )
