"""Fault injection through ``assay run`` end to end, against the scripted server.

Every fault ends the same honest way: the run completes (or, for auth, stops with one clear
line), every sample ends scored, unscored or error with its reason, the counts add up to the
dataset size, retries stay within the engine's one policy (at most 5 attempts per request
body, counted by the server), and cost counts only calls that were billed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assay.data import demo_path
from assay.engine.retry import RetryPolicy
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import (
    Action,
    ChatRequest,
    ScriptedServer,
    error,
    hang,
    no_choices,
    raw,
    reply,
    reset,
    stream,
)
from tests.optimize_helpers import small_dataset
from tests.run_helpers import assay, write_prices

PROMPT = str(demo_path("sentiment_prompt.md"))
N = 4
MAX_ATTEMPTS = RetryPolicy().max_attempts  # the engine's default policy, used by the CLI
PRICE_IN, PRICE_OUT = 1.0, 2.0  # USD per million tokens for compat/m
TOKENS_IN, TOKENS_OUT = 10, 1
PER_CALL = (TOKENS_IN * PRICE_IN + TOKENS_OUT * PRICE_OUT) / 1e6

Fault = Callable[[ChatRequest, int], Action | None]


class FaultyModel:
    """Answers like a sentiment model, but ``fault(request, arrival)`` may answer instead.

    ``arrival`` counts from 0 for each request body (``attempt_key``): the n-th try of the
    same request. Returning None means "answer normally" (right label, known usage).
    """

    def __init__(self, fault: Fault, truth: dict[str, str]) -> None:
        self.fault = fault
        self.truth = truth
        self.arrivals: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Action:
        with self._lock:
            n = self.arrivals[request.attempt_key]
            self.arrivals[request.attempt_key] += 1
        action = self.fault(request, n)
        if action is not None:
            return action
        label = self.truth.get(request.last_user_text, "positive")
        return reply(label, input_tokens=TOKENS_IN, output_tokens=TOKENS_OUT)


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any] | None
    results: list[ResultRecord]
    server_requests: list[ChatRequest]
    counts: dict[str, int]  # server arrivals per request body (count_for)
    texts: list[str]  # the dataset's input texts, in order

    @property
    def variant(self) -> dict[str, Any]:
        assert self.report is not None
        (variant,) = self.report["variants"]
        return variant  # type: ignore[no-any-return]

    def result_for(self, text: str) -> ResultRecord:
        (found,) = [r for r in self.results if r.request.messages[-1].content == text]
        return found


def texts(n: int = N) -> list[str]:
    """The input texts of ``small_dataset(path, n)``, in order."""
    lines = demo_path("sentiment.jsonl").read_text().splitlines()[:n]
    return [json.loads(line)["text"] for line in lines]


def run_with_fault(tmp_path: Path, fault: Fault, *extra: str, rows: int = N) -> Outcome:
    data = small_dataset(tmp_path / "d.jsonl", rows)
    records = [json.loads(line) for line in data.read_text().splitlines()]
    truth = {r["text"]: r["label"] for r in records}
    prices = write_prices(tmp_path / "prices.json", {"m": (PRICE_IN, PRICE_OUT)})
    model = FaultyModel(fault, truth)
    with ScriptedServer(model) as srv:
        proc = assay(
            "run",
            str(data),
            PROMPT,
            "-m",
            "compat/m",
            "--base-url",
            srv.base_url,
            "--metric",
            "label",
            "--prices",
            str(prices),
            "--concurrency",
            "4",
            "--json",
            *extra,
        )
        requests = srv.requests
        counts = {r.attempt_key: srv.count_for(r.attempt_key) for r in requests}
    report = json.loads(proc.stdout) if proc.stdout.strip() else None
    store = RunStore.open(os.environ["ASSAY_STORE"])
    runs = store.list_runs()
    results = store.results(runs[0].id) if runs else []
    assert store.integrity_problems() == []
    return Outcome(proc, report, results, requests, counts, [r["text"] for r in records])


def check_honest(out: Outcome) -> None:
    """The invariants every completed faulty run must keep."""
    assert out.proc.returncode == 0, out.proc.stderr
    assert "Traceback" not in out.proc.stderr
    assert out.report is not None and out.report["status"] == "complete"
    n = len(out.texts)
    score = out.variant["score"]
    assert score["n_scored"] + score["n_unscored"] + score["n_errors"] == n
    assert out.variant["n_requests"] == n and len(out.results) == n
    assert out.variant["n_errors"] == score["n_errors"]
    for result in out.results:
        (label,) = result.scores.values()
        assert label.status in ("scored", "unscored", "error")
        if label.status != "scored":
            assert label.reason, result
        if label.status == "error":
            assert result.error_kind and result.error and result.completion is None
        else:
            assert result.completion is not None and result.error_kind is None
    # One retry policy: no request body is ever sent more than max_attempts times.
    assert out.counts and max(out.counts.values()) <= MAX_ATTEMPTS
    # Cost counts billed calls only: successes with known usage, never a failed attempt.
    billed = [r.completion for r in out.results if r.completion is not None]
    if all(c.input_tokens is not None for c in billed):
        assert out.variant["task_cost_usd"] == pytest.approx(len(billed) * PER_CALL)
        if billed:
            assert out.variant["cost_per_1k_usd"] == pytest.approx(PER_CALL * 1000)


def fail_first(k: int, action: Action) -> Fault:
    """The first ``k`` tries of every request get ``action``; the next one is answered."""
    return lambda _request, n: action if n < k else None


# --------------------------------------------------------------------------- transient faults

# fault -> (what the server answers, how many times before it answers normally)
TRANSIENT: dict[str, tuple[Action, int]] = {
    "429 with Retry-After": (error(429, "slow down", retry_after=0.01), 2),
    "429 without Retry-After": (error(429, "slow down"), 1),  # backoff: ~1 s
    "500": (error(500, "internal", retry_after=0.01), 2),
    "502": (error(502, "bad gateway", retry_after=0.01), 2),
    "503 four times": (error(503, "overloaded", retry_after=0.01), 4),
    "connection reset": (reset(), 1),
    "truncated body": (
        raw(200, '{"id": "x", "choices": [{"index": 0,', {"Content-Length": "400"}),
        1,
    ),
    "non-JSON body": (raw(200, "<html>502 Bad Gateway</html>"), 1),
    "HTML content type": (raw(200, "<html>oops</html>", {"Content-Type": "text/html"}), 1),
    "no choices": (no_choices(), 1),
    "choices not a list": (raw(200, '{"choices": {"0": {"message": {}}}}'), 1),
    "content not text": (raw(200, '{"choices": [{"message": {"content": 7}}]}'), 1),
    "header too large to parse": (raw(200, "{}", {"X-Padding": "x" * 9000}), 1),
    "read timeout (hung server)": (hang(3), 1),  # --timeout 1
    # Chunks every 0.4 s: no single read times out, the call as a whole must.
    "trickling stream": (stream("positive " * 8, chunk_delay=0.4), 1),
}


def test_every_transient_fault_is_retried_and_every_sample_ends_scored(tmp_path: Path) -> None:
    """One run, one fault per sample, all at once: each is retried just as often as needed."""
    names = list(TRANSIENT)
    fault_of = dict(zip(texts(len(names)), names, strict=True))

    def fault(request: ChatRequest, n: int) -> Action | None:
        action, failures = TRANSIENT[fault_of[request.last_user_text]]
        return action if n < failures else None

    out = run_with_fault(
        tmp_path, fault, "--timeout", "1", "--concurrency", str(len(names)), rows=len(names)
    )
    check_honest(out)
    sent = Counter(r.last_user_text for r in out.server_requests)
    for text, name in fault_of.items():
        result = out.result_for(text)
        assert result.scores["label"].status == "scored", (name, result)
        assert sent[text] == TRANSIENT[name][1] + 1, name  # the retries it needed, no more
        assert result.completion is not None and result.completion.cost_usd == PER_CALL, name
    assert out.variant["score"]["mean"] == 1.0
    # Only the answered calls were billed: the failed attempts cost nothing.
    assert out.variant["task_cost_usd"] == pytest.approx(len(names) * PER_CALL)


# --------------------------------------------------------------------------- persistent faults


def test_persistent_5xx_ends_as_error_after_the_policy_and_costs_nothing(tmp_path: Path) -> None:
    """Half the samples always fail: they end as errors after exactly max_attempts tries."""

    def fault(request: ChatRequest, n: int) -> Action | None:
        broken = request.last_user_text in first[:2]
        return error(503, "down for maintenance", retry_after=0.01) if broken else None

    first = texts()
    out = run_with_fault(tmp_path, fault)
    check_honest(out)
    score = out.variant["score"]
    assert (score["n_scored"], score["n_unscored"], score["n_errors"]) == (2, 0, 2)
    assert score["mean"] == 1.0  # errors are excluded from the mean, not counted as 0
    for text in first[:2]:
        result = out.result_for(text)
        assert result.error_kind == "unavailable" and "down for maintenance" in (result.error or "")
        assert result.scores["label"].status == "error"
        assert "down for maintenance" in result.scores["label"].reason
    by_text = Counter(r.last_user_text for r in out.server_requests)
    assert [by_text[t] for t in first] == [MAX_ATTEMPTS, MAX_ATTEMPTS, 1, 1]
    assert out.variant["task_cost_usd"] == pytest.approx(2 * PER_CALL)  # 10 failures: $0
    assert out.variant["cost_per_1k_usd"] == pytest.approx(PER_CALL * 1000)


def test_persistent_429_honours_retry_after_and_gives_up_at_the_policy(tmp_path: Path) -> None:
    out = run_with_fault(tmp_path, lambda _r, _n: error(429, "quota", retry_after=0.01))
    # every call failed: the run is failed, with one line saying so (never "complete", exit 0)
    assert out.proc.returncode == 1 and "Traceback" not in out.proc.stderr
    assert out.report is not None and out.report["status"] == "failed"
    (line,) = [x for x in out.proc.stderr.splitlines() if x.startswith("error:")]
    assert f"all {N} calls failed" in line
    assert out.variant["score"]["n_errors"] == N and out.variant["score"]["mean"] is None
    assert sorted(out.counts.values()) == [MAX_ATTEMPTS] * N
    assert {r.error_kind for r in out.results} == {"rate_limit"}
    assert out.variant["task_cost_usd"] == 0.0 and out.variant["cost_per_1k_usd"] is None


def test_context_length_400_is_never_retried_and_is_an_error_with_its_reason(
    tmp_path: Path,
) -> None:
    too_long = error(
        400,
        "This model's maximum context length is 8192 tokens. However, you requested 9000.",
        code="context_length_exceeded",
    )
    first = texts()
    out = run_with_fault(tmp_path, lambda r, _n: too_long if r.last_user_text == first[0] else None)
    check_honest(out)
    result = out.result_for(first[0])
    assert result.error_kind == "context_length"
    assert "maximum context length" in result.scores["label"].reason
    assert sorted(out.counts.values()) == [1] * N  # a bad request is never re-sent
    assert out.variant["score"]["n_errors"] == 1 and out.variant["score"]["n_scored"] == 3


def test_missing_usage_makes_cost_unknown_never_zero(tmp_path: Path) -> None:
    first = texts()

    def fault(request: ChatRequest, _n: int) -> Action | None:
        if request.last_user_text != first[0]:
            return None
        return reply("positive", usage=False)

    out = run_with_fault(tmp_path, fault)
    check_honest(out)
    assert out.variant["score"]["n_scored"] == N  # the response is still judged
    assert out.result_for(first[0]).completion.cost_usd is None  # type: ignore[union-attr]
    # One call of unknown cost makes every total unknown: a partial sum would understate it.
    for key in ("task_cost_usd", "cost_per_1k_usd", "spent_usd", "total_cost_usd"):
        assert out.variant[key] is None, key
    assert out.report is not None and out.report["total_cost_usd"] is None
    assert sorted(out.counts.values()) == [1] * N


def test_missing_usage_shows_unknown_in_the_table(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 2)
    prices = write_prices(tmp_path / "prices.json", {"m": (PRICE_IN, PRICE_OUT)})
    with ScriptedServer(lambda _r: reply("positive", usage=False)) as srv:
        proc = assay(
            "run",
            str(data),
            PROMPT,
            "-m",
            "compat/m",
            "--base-url",
            srv.base_url,
            "--metric",
            "label",
            "--prices",
            str(prices),
        )
    assert proc.returncode == 0, proc.stderr
    assert "unknown" in proc.stdout and "$0.000" not in proc.stdout


# --------------------------------------------------------------------------- auth


def test_401_stops_the_run_with_one_clear_line(tmp_path: Path) -> None:
    out = run_with_fault(tmp_path, lambda _r, _n: error(401, "Invalid authentication"))
    assert out.proc.returncode != 0
    assert "Traceback" not in out.proc.stderr
    lines = out.proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.proc.stderr
    assert "Invalid authentication" in lines[0] and "OPENAI_COMPAT_API_KEY" in lines[0]
    assert out.report is not None and out.report["status"] == "failed"
    assert set(out.counts.values()) == {1}  # auth failures are never retried
    assert len(out.server_requests) <= 4  # at most the calls already in flight
    store = RunStore.open(os.environ["ASSAY_STORE"])
    assert store.list_runs()[0].status == "failed"
