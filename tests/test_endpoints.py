"""Several endpoints per model: ``--base-url`` repeated, or ``base_url: [..]`` in a models config.

Calls go to the endpoint with the fewest outstanding; one that fails to connect is taken out
for a cool-down and the call goes to another at once; the counts per endpoint are kept with
the run's summary (``assay show``, ``-o`` JSON). Through the real CLI and the engine, against
scripted servers; the cool-down rules on a fake clock.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from assay.data import demo_path
from assay.engine.endpoints import Endpoint, EndpointPool
from assay.engine.engine import Engine, EngineConfig
from assay.engine.retry import RetryPolicy
from assay.errors import ProviderUnavailableError, RateLimitError
from assay.providers.specs import resolve_model
from assay.records import EndpointUse, ModelConfig
from assay.testing import Action, ChatRequest, ScriptedServer, echo, reply
from tests.conftest import user_request
from tests.optimize_helpers import MAGIC, OptimizeZoo, optimize_args, proposal, small_dataset
from tests.run_helpers import LabelZoo, assay

PROMPT = str(demo_path("sentiment_prompt.md"))


def rows_file(path: Path, n: int) -> Path:
    lines = (json.dumps({"input": f"Review {i}: a film.", "output": "positive"}) for i in range(n))
    path.write_text("\n".join(lines) + "\n")
    return path


def run_args(data: Path, *urls: str, extra: tuple[str, ...] = ()) -> list[str]:
    flags = [flag for url in urls for flag in ("--base-url", url)]
    return [
        "run", str(data), PROMPT, "-m", "compat/acc90", *flags, "--metric", "label",
        "--json", *extra,
    ]  # fmt: skip


def uses(report: dict[str, object]) -> dict[str, EndpointUse]:
    endpoints = report["endpoints"]
    assert isinstance(endpoints, list)
    return {e["base_url"]: EndpointUse.model_validate(e) for e in endpoints}


def dead_url() -> str:
    """A base URL where nothing listens any more (a server started, then stopped)."""
    srv = ScriptedServer(echo()).start()
    url = srv.base_url
    srv.stop()
    return url


# --------------------------------------------------------------------------- spreading


def test_repeated_base_urls_share_the_load(tmp_path: Path) -> None:
    rows = 60
    data = rows_file(tmp_path / "d.jsonl", rows)
    zoo = LabelZoo(delays={"acc90": 0.02})
    with ScriptedServer(zoo) as a, ScriptedServer(zoo) as b:
        urls = (a.base_url, b.base_url)
        proc = assay(*run_args(data, *urls, extra=("--concurrency", "8")))
        counts = (a.count, b.count)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["variants"][0]["n_requests"] == rows
    assert sum(counts) == rows and min(counts) >= rows * 0.4  # about half each
    by_url = uses(report)
    assert (by_url[urls[0]].requests, by_url[urls[1]].requests) == counts


def test_the_least_busy_endpoint_gets_the_next_call(tmp_path: Path) -> None:
    """A slow replica holds its calls longer, so fewer new ones go to it (round robin would
    give each half)."""
    rows = 60
    data = rows_file(tmp_path / "d.jsonl", rows)
    with (
        ScriptedServer(LabelZoo(delays={"acc90": 0.3})) as slow,
        ScriptedServer(LabelZoo(delays={"acc90": 0.01})) as fast,
    ):
        proc = assay(*run_args(data, slow.base_url, fast.base_url, extra=("--concurrency", "8")))
        counts = (slow.count, fast.count)
    assert proc.returncode == 0, proc.stderr
    assert sum(counts) == rows
    assert counts[1] > 3 * counts[0]


def test_a_models_config_lists_base_urls_and_the_results_json_counts_them(
    tmp_path: Path,
) -> None:
    data = rows_file(tmp_path / "d.jsonl", 30)
    out = tmp_path / "results.json"
    with ScriptedServer(LabelZoo()) as a, ScriptedServer(LabelZoo()) as b:
        urls = (a.base_url, b.base_url)
        config = tmp_path / "models.yaml"
        config.write_text(
            f"models:\n  - spec: compat/acc90\n    base_url: [{a.base_url}, {b.base_url}]\n"
        )
        args = ["run", str(data), PROMPT, "--config", str(config), "--metric", "label"]
        proc = assay(*args, "-o", str(out))
        counts = (a.count, b.count)
    assert proc.returncode == 0, proc.stderr
    assert min(counts) > 0 and sum(counts) == 30
    by_url = uses(json.loads(out.read_text()))
    assert [by_url[url].requests for url in urls] == list(counts)
    assert "Endpoints" in proc.stdout  # two endpoints: the table is printed


def test_an_optimize_run_counts_its_endpoints_in_its_json_and_show(tmp_path: Path) -> None:
    """The task model on two replicas, the reasoner on the first: each base URL's counts are
    what its server received (task and reasoner calls alike), kept with the run's result."""
    data = small_dataset(tmp_path / "d.jsonl", 40)
    rewrite = proposal(f"Classify the sentiment of the movie review. {MAGIC}.")
    zoo = OptimizeZoo([rewrite])
    with ScriptedServer(zoo) as a, ScriptedServer(zoo) as b:
        args = optimize_args(a, data, "--max-iterations", "1", "--base-url", b.base_url)
        proc = assay(*args)
        counts = {a.base_url: a.count, b.base_url: b.count}
        result = json.loads(proc.stdout)
        shown_json = json.loads(assay("show", result["run_id"], "--json").stdout)
        shown = assay("show", result["run_id"], env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    by_url = uses(result)
    assert {url: use.requests for url, use in by_url.items()} == counts
    assert all(use.errors == 0 and use.limit is None for use in by_url.values())
    assert min(counts.values()) > 0  # the task calls were spread over both
    assert shown_json["endpoints"] == result["endpoints"]
    assert "Endpoints" in shown.stdout
    assert all(url in shown.stdout for url in counts)


def test_the_cache_key_does_not_depend_on_the_endpoint_or_the_order(tmp_path: Path) -> None:
    data = rows_file(tmp_path / "d.jsonl", 20)
    with ScriptedServer(LabelZoo()) as a, ScriptedServer(LabelZoo()) as b:
        first = assay(*run_args(data, a.base_url, b.base_url))
        sent = a.count + b.count
        again = assay(*run_args(data, b.base_url, a.base_url))
        resent = a.count + b.count - sent
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert sent == 20 and resent == 0  # every reply from the cache, whichever answered it
    assert json.loads(again.stdout)["variants"][0]["cached_requests"] == 20


def test_one_base_url_listed_twice_is_refused(tmp_path: Path) -> None:
    data = rows_file(tmp_path / "d.jsonl", 2)
    proc = assay(*run_args(data, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"))
    assert proc.returncode == 2
    assert "lists one base URL twice" in proc.stderr and "Traceback" not in proc.stderr


def test_a_list_of_one_base_url_is_that_url() -> None:
    one = resolve_model("compat/m", base_url=["http://h/v1"])
    assert one == resolve_model("compat/m", base_url="http://h/v1")
    assert one.base_urls == ("http://h/v1",)
    two = ModelConfig.model_validate_json(
        resolve_model("compat/m", base_url=["http://a/v1", "http://b/v1"]).model_dump_json()
    )
    assert two.base_urls == ("http://a/v1", "http://b/v1")  # as stored and read back


# --------------------------------------------------------------------------- failing endpoints


async def test_a_call_that_cannot_connect_goes_to_another_endpoint_at_once() -> None:
    """One attempt allowed: the move to a live endpoint is not a retry."""
    config = EngineConfig(retry=RetryPolicy(max_attempts=1), use_cache=False)
    with ScriptedServer(echo()) as live:
        dead, alive = dead_url(), live.base_url
        model = resolve_model("compat/m", base_url=[dead, alive])
        async with Engine(config) as engine:
            done = [await engine.complete(model, user_request(f"q{i}")) for i in range(6)]
        assert live.count == 6
    assert [c.text for c in done] == [f"q{i}" for i in range(6)]
    by_url = {u.base_url: u for u in engine.endpoint_use()}
    assert (by_url[dead].requests, by_url[dead].errors, by_url[dead].taken_out) == (1, 1, 1)
    assert by_url[alive].requests == 6  # the dead one is out for its cool-down


async def test_with_every_endpoint_down_the_retry_policy_decides() -> None:
    config = EngineConfig(retry=RetryPolicy(max_attempts=2, base_delay_s=0.0), use_cache=False)
    model = resolve_model("compat/m", base_url=[dead_url(), dead_url()])
    async with Engine(config) as engine:
        with pytest.raises(ProviderUnavailableError, match="connection failed"):
            await engine.complete(model, user_request())
    # each endpoint tried once per attempt at most: 1 move + 2 attempts
    assert sum(u.requests for u in engine.endpoint_use()) == 3


def test_an_endpoint_that_dies_mid_run_is_taken_out_and_the_run_completes(
    tmp_path: Path,
) -> None:
    """Replica A stops after its 10th request, with calls in flight: they and every later
    call are answered by B; no row is lost, and A's counts show it was taken out."""
    rows = 80
    data = rows_file(tmp_path / "d.jsonl", rows)
    zoo = LabelZoo(delays={"acc90": 0.05})
    reached = threading.Event()

    def dying(request: ChatRequest) -> Action:
        if request.index >= 9:
            reached.set()
        return zoo(request) if request.index < 9 else reply("positive", delay=5.0)

    a, b = ScriptedServer(dying).start(), ScriptedServer(zoo).start()
    url_a, url_b = a.base_url, b.base_url

    def kill_a() -> None:
        reached.wait(60)
        a.stop()

    killer = threading.Thread(target=kill_a)
    killer.start()
    try:
        proc = assay(*run_args(data, url_a, url_b, extra=("--concurrency", "8")))
        killer.join(60)
        served_b = b.count
        run = json.loads(proc.stdout)
        shown = assay("show", run["run_id"])
        shown_json = json.loads(assay("show", run["run_id"], "--json").stdout)
    finally:
        a.stop()
        b.stop()
    assert proc.returncode == 0, proc.stderr
    (variant,) = run["variants"]
    assert (variant["n_requests"], variant["n_errors"]) == (rows, 0)  # nothing lost
    by_url = uses(run)
    dead, live = by_url[url_a], by_url[url_b]
    assert dead.taken_out >= 1 and dead.errors >= 1
    answered_by_a = dead.requests - dead.errors
    assert answered_by_a <= 9  # what A answered before it went (its last calls were cut)
    assert live.requests == served_b and live.errors == 0
    assert answered_by_a + live.requests == rows  # every other row went to B, once
    assert shown_json["endpoints"] == run["endpoints"]  # kept with the run's summary
    assert "Endpoints" in shown.stdout and "taken out" in shown.stdout


# --------------------------------------------------------------------------- cool-downs


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _refused() -> ProviderUnavailableError:
    return ProviderUnavailableError("connection failed", connection_failed=True)


async def test_cool_downs_double_and_a_returning_endpoint_gets_one_call_at_a_time() -> None:
    clock = _Clock()
    a, b = Endpoint("http://a", None, cooldown_s=5.0), Endpoint("http://b", None, 5.0)
    pool = EndpointPool([a, b], clock=clock, sleep=asyncio.sleep)
    chosen, epoch = await pool.acquire()
    assert chosen is a  # a tie: the first listed
    a.failed(epoch, _refused(), clock.now, 0.0)
    assert (a.taken_out, a.out_until) == (1, 5.0)
    for _ in range(3):
        assert (await pool.acquire())[0] is b  # a is out
    clock.now = 5.0
    probe, epoch = await pool.acquire()
    assert probe is a  # back, with the fewest in flight
    assert (await pool.acquire())[0] is b  # one call at a time until it succeeds
    a.failed(epoch, _refused(), clock.now, 0.0)
    assert (a.taken_out, a.out_until) == (2, 15.0)  # twice as long
    clock.now = 15.0
    probe, _ = await pool.acquire()
    probe.succeeded(0.1)
    assert a.strikes == 0 and a.usable(clock.now)


async def test_other_errors_count_but_do_not_take_an_endpoint_out() -> None:
    a = Endpoint("http://a", None, cooldown_s=5.0)
    pool = EndpointPool([a, Endpoint("http://b", None, 5.0)], clock=_Clock(), sleep=asyncio.sleep)
    _, epoch = await pool.acquire()
    a.failed(epoch, RateLimitError("slow down"), 0.0, 0.0)
    assert (a.errors, a.overloaded, a.taken_out) == (1, 1, 0) and a.usable(0.0)
