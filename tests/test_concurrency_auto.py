"""``--concurrency auto``: an AIMD limit per endpoint that finds what a rate-limited server takes.

The limiter itself on a fake clock (slow start, one cut per round, Retry-After holding new
calls, latency that stops growth); the engine honouring Retry-After on a fake clock; and the
real CLI against the scripted server behind a token bucket and in a 429 storm, where every
row must be answered exactly once. No assertion is on time: shares and counts only.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from assay.data import demo_path
from assay.engine.engine import Engine, EngineConfig
from assay.engine.limiter import AdaptiveLimit, AimdSettings, concurrency_fields
from assay.engine.retry import RetryPolicy
from assay.errors import RateLimitError
from assay.jobs import ResumeChanges
from assay.records import EndpointUse
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, TokenBucket, error, reply, sequence
from tests.conftest import compat_model, user_request
from tests.run_helpers import assay, write_prices

PROMPT = str(demo_path("sentiment_prompt.md"))


def rows_file(path: Path, n: int) -> Path:
    """``n`` distinct labelled rows (each a distinct request body)."""
    lines = (
        json.dumps({"input": f"Review {i}: {'warm' if i % 2 else 'dull'} film.", "output": "x"})
        for i in range(n)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def run_args(data: Path, srv: ScriptedServer, *extra: str) -> list[str]:
    return [
        "run", str(data), PROMPT, "-m", "compat/m", "--base-url", srv.base_url,
        "--metric", "contains", "--no-cache", "--max-tokens", "4", "--json", *extra,
    ]  # fmt: skip


def endpoint_of(report: dict[str, Any]) -> EndpointUse:
    (use,) = report["endpoints"]
    return EndpointUse.model_validate(use)


class FakeClock:
    """A clock that only moves when the engine sleeps (every sleep is recorded)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- the limiter


def saturated(limit: AdaptiveLimit, replies: int, latency: float = 0.1) -> None:
    """A sender with more calls than the limit: full at once, and refilled after each reply."""
    while limit.free():
        limit.take()
    for _ in range(replies):
        limit.succeeded(latency)
        while limit.free():
            limit.take()


def test_slow_start_doubles_per_round_then_one_per_round_after_a_cut() -> None:
    limit = AdaptiveLimit(AimdSettings(start=4, backoff=0.5))
    saturated(limit, replies=4)
    assert limit.current == 8 and limit.in_flight == 8  # +1 a reply: doubled in one round
    sent_in = limit.epoch
    limit.overloaded(sent_in, pause_s=0.0, now=0.0)
    assert limit.current == 4 and limit.decreases == 1
    for _ in range(3):  # more 429s to calls of the same round: one cut per round
        limit.overloaded(sent_in, pause_s=0.0, now=0.0)
    assert limit.current == 4 and limit.in_flight == 4
    saturated(limit, replies=3)
    assert limit.current == 4  # +1/limit a reply after a cut: about one per round
    saturated(limit, replies=2)
    assert limit.current == 5
    assert (limit.increases, limit.decreases, limit.lowest, limit.highest) == (5, 1, 4, 8)


def test_no_growth_while_the_limit_is_not_in_use() -> None:
    limit = AdaptiveLimit(AimdSettings(start=4))
    for _ in range(50):
        limit.take()
        limit.succeeded(0.1)  # one call at a time: the limit of 4 was never the constraint
    assert limit.current == 4 and limit.increases == 0


def test_a_retry_after_holds_new_calls_until_it_has_passed() -> None:
    limit = AdaptiveLimit(AimdSettings(start=4, backoff=0.7))
    epoch = limit.take()
    limit.overloaded(epoch, pause_s=7.0, now=100.0)
    assert limit.current == 2  # 4 x 0.7, rounded down
    assert limit.free() == 2 and limit.pause_left(100.0) == 7.0
    assert limit.pause_left(106.9) > 0 and limit.pause_left(107.0) == 0


def test_latency_that_stops_being_flat_stops_growth() -> None:
    limit = AdaptiveLimit(AimdSettings(start=4, window=4, tolerance=2.0))
    saturated(limit, replies=8, latency=0.1)
    grown = limit.current
    assert grown > 4
    saturated(limit, replies=4, latency=1.0)  # ten times the best median: the server queues
    held = limit.current
    saturated(limit, replies=40, latency=1.0)
    assert limit.current == held  # holds rather than piles more calls on
    assert held <= grown + 4  # the one window it took to see the latency rise


def test_the_ceiling_caps_and_one_is_the_floor() -> None:
    limit = AdaptiveLimit(AimdSettings(start=4, ceiling=6))
    saturated(limit, replies=30)
    assert limit.current == 6 and limit.highest == 6
    for _ in range(20):
        limit.overloaded(limit.take(), pause_s=0.0, now=0.0)
    assert limit.current == 1 and limit.lowest == 1


@pytest.mark.parametrize(
    ("given", "fields"),
    [
        ("auto", {"concurrency": "auto"}),
        ("AUTO:64", {"concurrency": "auto", "max_concurrency": 64}),
        ("16", {"concurrency": 16}),
        (8, {"concurrency": 8}),
    ],
)
def test_concurrency_is_a_number_auto_or_auto_with_a_ceiling(
    given: str | int, fields: dict[str, object]
) -> None:
    assert concurrency_fields(given) == fields
    config = EngineConfig(concurrency=given)  # "16" and "auto:64" too, as the flag takes them
    assert config.auto == (fields["concurrency"] == "auto")
    expected = 256 if config.auto else int(given)
    assert config.max_in_flight == fields.get("max_concurrency", expected)


@pytest.mark.parametrize("given", ["0", "auto:0", "fast", "auto:lots", "-3"])
def test_a_bad_concurrency_is_refused_on_the_command_line(given: str, tmp_path: Path) -> None:
    data = rows_file(tmp_path / "d.jsonl", 2)
    proc = assay("run", str(data), PROMPT, "-m", "compat/m", "--base-url", "http://x/v1",
                 "--metric", "contains", "--concurrency", given)  # fmt: skip
    assert proc.returncode == 2
    assert "--concurrency" in proc.stderr and "auto" in proc.stderr
    assert "greater than or equal to 1" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_changes_accept_auto() -> None:
    fixed = EngineConfig(concurrency=16)
    auto = ResumeChanges(concurrency="auto:32").apply(fixed)
    assert (auto.concurrency, auto.max_concurrency) == ("auto", 32)
    assert ResumeChanges().apply(auto) == auto  # a resume keeps auto and its ceiling
    assert ResumeChanges(concurrency=4).apply(auto).concurrency == 4
    with pytest.raises(ValueError, match="auto"):
        ResumeChanges(concurrency="sometimes")


# --------------------------------------------------------------------------- the engine


async def test_the_engine_holds_calls_for_a_retry_after() -> None:
    """A 429 with Retry-After 7 s: the next call to that endpoint waits the 7 s first."""
    clock = FakeClock()
    config = EngineConfig(concurrency="auto", retry=RetryPolicy(max_attempts=1), use_cache=False)
    with ScriptedServer(sequence(error(429, retry_after=7), then=reply("ok"))) as srv:
        engine = Engine(config, sleep=clock.sleep, clock=clock)
        async with engine:
            with pytest.raises(RateLimitError):
                await engine.complete(compat_model(srv), user_request("one"))
            assert clock.sleeps == []  # one attempt: no retry slept
            done = await engine.complete(compat_model(srv), user_request("two"))
        assert srv.count == 2
    assert done.text == "ok"
    assert clock.sleeps == [7.0]  # the second call waited out the first one's Retry-After
    (use,) = engine.endpoint_use()
    assert (use.requests, use.errors, use.overloaded) == (2, 1, 1)
    cut = int(4 * AimdSettings().backoff)  # one cut from the start of 4
    assert use.limit is not None and use.limit.decreases == 1 and use.limit.lowest == cut


async def test_retries_after_a_429_wait_its_retry_after_under_auto() -> None:
    clock = FakeClock()
    config = EngineConfig(concurrency="auto", use_cache=False)
    handler = sequence(error(429, retry_after=3), error(429, retry_after=5), then=reply("ok"))
    with ScriptedServer(handler) as srv:
        async with Engine(config, sleep=clock.sleep, clock=clock) as engine:
            done = await engine.complete(compat_model(srv), user_request())
        assert srv.count == 3
    assert done.text == "ok"
    assert clock.sleeps == [3.0, 5.0]  # the retry's own wait covers the endpoint's pause


# --------------------------------------------------------------------------- the CLI


def test_auto_under_a_token_bucket_backs_off_and_loses_nothing(tmp_path: Path) -> None:
    """100 req/s, 0.1 s a reply: about 10 calls in flight fit. ``auto`` finds it: few 429s,
    the limit cut after them and grown after successes, every row answered once."""
    rows = 400
    data = rows_file(tmp_path / "d.jsonl", rows)
    bucket = TokenBucket(lambda _r: reply("x", delay=0.1), rate=100, burst=10)
    with ScriptedServer(bucket) as srv:
        proc = assay(*run_args(data, srv, "--concurrency", "auto:64"))
        sent = srv.count
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    (variant,) = report["variants"]
    assert report["status"] == "complete"
    assert (variant["n_requests"], variant["n_errors"]) == (rows, 0)
    assert bucket.accepted == rows and bucket.duplicates() == {}  # none lost, none twice
    assert sent == bucket.accepted + bucket.limited
    assert bucket.limited / sent < 0.10  # fixed 64 would get most of its calls refused
    use = endpoint_of(report)
    assert (use.requests, use.overloaded) == (sent, bucket.limited)
    limit = use.limit
    assert limit is not None
    assert limit.highest > 4  # grew from its start of 4 on successes
    assert limit.decreases >= 1 and limit.lowest < limit.highest  # cut after 429s
    assert limit.highest <= 64  # the ceiling of auto:64


def test_a_429_storm_takes_the_limit_to_one_and_every_row_still_completes(
    tmp_path: Path,
) -> None:
    """The first 40 requests are refused (Retry-After 0.02 s), then all are answered."""
    rows, storm = 120, 40
    data = rows_file(tmp_path / "d.jsonl", rows)
    handler = sequence(*[error(429, retry_after=0.02)] * storm, then=reply("x", delay=0.01))
    with ScriptedServer(handler) as srv:
        proc = assay(*run_args(data, srv, "--concurrency", "auto"))
        sent = srv.count
        keys = [r.attempt_key for r in srv.requests]
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    (variant,) = report["variants"]
    assert (variant["n_requests"], variant["n_errors"]) == (rows, 0)
    assert sent == rows + storm  # each refused call sent again once, nothing more
    assert len(set(keys[storm:])) == rows  # after the storm: each row answered exactly once
    use = endpoint_of(report)
    assert use.overloaded == storm and use.limit is not None
    assert use.limit.lowest == 1  # backed off to one call in flight
    assert use.limit.final > 1  # and grew again once replies came back


def test_the_progress_display_shows_the_limit_where_it_stands(tmp_path: Path) -> None:
    """Under auto:64 the live display has a concurrency row; its last redraw, at the end of
    the run, shows the limit the run ended with. A fixed concurrency has no such row."""
    data = rows_file(tmp_path / "d.jsonl", 200)
    with ScriptedServer(lambda _r: reply("x", delay=0.01)) as srv:
        args = [a for a in run_args(data, srv) if a != "--json"]
        auto = assay(*args, "--concurrency", "auto:64", env={"COLUMNS": "120"})
        fixed = assay(*args, "--concurrency", "8", env={"COLUMNS": "120"})
    assert auto.returncode == 0 and fixed.returncode == 0, auto.stderr + fixed.stderr
    shown = re.findall(r"^concurrency\b.* (\d+)/64 +auto\s*$", auto.stderr, re.MULTILINE)
    assert len(shown) == 1, auto.stderr  # one row, drawn once its last value is known
    run_id = re.findall(r"Details: assay show (\S+)", auto.stdout)[-1]
    use = endpoint_of(json.loads(assay("show", run_id, "--json").stdout))
    assert use.limit is not None and use.limit.final > 4  # it moved from its start of 4
    assert int(shown[0]) == use.limit.final
    assert not re.search(r"^concurrency\b", fixed.stderr, re.MULTILINE)


def test_a_resume_keeps_auto_and_its_ceiling(tmp_path: Path) -> None:
    """A run with auto:8 stopped by its budget, resumed with a higher one: the resumed session
    runs under auto:8 (never more than 8 in flight, not the default fixed 16), and the
    per-endpoint counts of both sessions add up in the report."""
    data = rows_file(tmp_path / "d.jsonl", 80)
    prices = write_prices(tmp_path / "prices.json", {"acc90": (2.0, 8.0)})
    model = InFlight()
    args = ["run", str(data), PROMPT, "-m", "compat/acc90", "--metric", "contains", "--json"]
    args += ["--concurrency", "auto:8", "--max-tokens", "2", "--prices", str(prices)]
    with ScriptedServer(model) as srv:
        first = assay(*args, "--base-url", srv.base_url, "--max-cost", "0.002")
        stopped = json.loads(first.stdout)
        model.peak = 0
        resumed = assay("run", "--resume", stopped["run_id"], "--max-cost", "1", "--json")
        served = srv.count
    assert first.returncode == 0, first.stderr
    assert stopped["status"] == "stopped"
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "complete" and report["variants"][0]["n_requests"] == 80
    assert 4 < model.peak <= 8  # grew past its start, never past the ceiling
    engine = RunStore.open(os.environ["ASSAY_STORE"]).get_run(report["run_id"]).config.job
    assert (engine["engine"]["concurrency"], engine["engine"]["max_concurrency"]) == ("auto", 8)
    use = endpoint_of(report)
    assert use.requests == served  # both sessions' calls, added up
    assert use.limit is not None and use.limit.highest <= 8


class InFlight:
    """Answers after 0.05 s and records the most requests it held at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def __call__(self, request: ChatRequest) -> Action:
        self.now += 1  # handlers run on the server's one event loop: no lock needed
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.05)
        self.now -= 1
        return reply("positive", input_tokens=40, output_tokens=2)
