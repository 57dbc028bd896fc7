"""Batch mode (``--batch``): requests go through OpenAI's Batch API or Anthropic's Message
Batches, on the scripted server's batch endpoints, through the real SDKs.

A batch run must end with the scores of a live run at the batch price; what a batch does not
answer (error lines, expired requests) is called live; a kill -9 while batches are in flight,
then ``--resume``, collects the same batches (no second create, no request answered twice).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from perf import batch_cost

from assay import api
from assay.benchmark.config import RunConfig
from assay.cli.prices import prices_json
from assay.data import demo_path, load_dataset
from assay.data.prompts import load_prompt
from assay.engine.accounting import input_token_bound
from assay.engine.batch import BatchSettings
from assay.errors import UserInputError
from assay.evaluation.config import ScoringConfig
from assay.optimizer.config import OptimizeConfig
from assay.pricing import PriceTable, batch_price
from assay.providers.specs import resolve_model
from assay.records import GenerationParams, Request, Sample
from assay.store.runstore import RunStore
from assay.testing import Action, BatchScript, ChatRequest, ScriptedServer, echo, error
from tests.optimize_helpers import small_dataset
from tests.run_helpers import LabelZoo, assay

PROMPT = str(demo_path("sentiment_prompt.md"))
ROWS = 12
POLL = ("--batch-poll", "0.02")
# Anthropic models of the bundled price table (whose batch discount is the provider's 50%).
CLAUDES = ("anthropic/claude-3-5-haiku", "anthropic/claude-3-haiku")


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-dummy")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)  # the SDK would read it otherwise


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return small_dataset(tmp_path / "d.jsonl", ROWS)


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    entry = {"input_per_mtok": 1.0, "output_per_mtok": 4.0, "batch_discount": 0.5}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"prices": {"compat/acc90": entry, "compat/acc60": entry}}))
    return path


def models(api_kind: str, url: str) -> list[str]:
    if api_kind == "anthropic":
        return ["-m", CLAUDES[0], "-m", CLAUDES[1], "--base-url", url]
    return ["-m", "compat/acc90", "-m", "compat/acc60", "--base-url", url]


def run_args(data: Path, prices: Path, api_kind: str, url: str, *extra: str) -> list[str]:
    return [
        "run",
        str(data),
        PROMPT,
        *models(api_kind, url),
        "--metric",
        "label",
        "--prices",
        str(prices),
        "--no-cache",
        "--json",
        *extra,
    ]


def run_json(*args: str) -> dict[str, Any]:
    proc = assay(*args)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def by_variant(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["variant"]: v for v in result["variants"]}


def same_scores(batch: dict[str, Any], live: dict[str, Any]) -> None:
    assert batch["status"] == live["status"] == "complete"
    for name, v in by_variant(live).items():
        b = by_variant(batch)[name]
        assert (b["score"], b["metrics"], b["n_requests"], b["n_errors"]) == (
            v["score"],
            v["metrics"],
            v["n_requests"],
            v["n_errors"],
        )
    assert batch["comparisons"] == live["comparisons"]


def live_calls(srv: ScriptedServer) -> list[ChatRequest]:
    return [r for r in srv.requests if r.batch_id is None]


# --------------------------------------------------------------------------- equal to live


@pytest.mark.parametrize("api_kind", ["openai", "anthropic"])
def test_a_batch_run_scores_as_a_live_run_at_the_batch_price(
    api_kind: str, data: Path, prices: Path
) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        live = run_json(*run_args(data, prices, api_kind, srv.base_url))
        live_bodies = {r.attempt_key for r in srv.requests}
        srv.reset_log()
        batch = run_json(*run_args(data, prices, api_kind, srv.base_url, "--batch", *POLL))
        created = srv.batches.created
        requests = srv.requests
    same_scores(batch, live)
    assert {r.attempt_key for r in requests} == live_bodies  # the same request bodies
    # One batch job per model, holding every row; nothing was called live.
    assert [(b.api, len(b.requests)) for b in created] == [(api_kind, ROWS)] * 2
    assert len(requests) == 2 * ROWS and all(r.batch_id for r in requests)
    assert Counter(r.attempt_key for r in requests).most_common(1)[0][1] == 1
    for name, v in by_variant(live).items():
        b = by_variant(batch)[name]
        assert b["cost_per_1k_usd"] == pytest.approx(v["cost_per_1k_usd"] / 2)
        assert (b["batch_requests"], b["batch_discount"]) == (ROWS, 0.5)
        assert b["latency_p50_ms"] is None  # a batch reply has no latency of its own
    store = RunStore.open(os.environ["ASSAY_STORE"])
    records = store.batches(batch["run_id"])
    assert {r.batch_id for r in records} == {b.id for b in created}
    assert all(r.collected and len(r.custom_ids) == ROWS for r in records)


def test_the_python_api_runs_a_model_in_batch_mode(data: Path, prices: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        model = resolve_model("compat/acc90", base_url=srv.base_url, batch=True)
        live = resolve_model("compat/acc60", base_url=srv.base_url)
        config = RunConfig(
            data=str(data),
            prompts=[PROMPT],
            models=[model, live],
            scoring=ScoringConfig(metrics=["label"]),
            params=GenerationParams(max_tokens=2),
            batch=BatchSettings(max_requests=5, poll_s=0.02),
        )
        report = api.run(config, prices=prices)
        created = srv.batches.created
        called_live = {r.model for r in live_calls(srv)}
    assert report.status == "complete"
    # 12 requests in jobs of at most 5; the other model was called live meanwhile.
    assert sorted(len(b.requests) for b in created) == [2, 5, 5]
    assert called_live == {"acc60"}
    counts = {v.variant: v.batch_requests for v in report.variants}
    assert counts == {"compat/acc90": ROWS, "compat/acc60": 0}


# --------------------------------------------------------------------------- partial batches


@pytest.mark.parametrize("api_kind", ["openai", "anthropic"])
def test_an_expired_batch_has_its_unanswered_requests_called_live(
    api_kind: str, data: Path, prices: Path
) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        live = run_json(*run_args(data, prices, api_kind, srv.base_url))
        srv.reset_log()
    with ScriptedServer(LabelZoo(), batch=BatchScript(expire_after=4)) as srv:
        batch = run_json(*run_args(data, prices, api_kind, srv.base_url, "--batch", *POLL))
        created = srv.batches.created
        requests = srv.requests
    same_scores(batch, live)
    assert all(b.expired and len(b.requests) == ROWS for b in created) and len(created) == 2
    # Four answered in each batch; the eight it left were called live, each once.
    in_batch = [r for r in requests if r.batch_id]
    assert len(in_batch) == 2 * 4 and len(requests) == 2 * ROWS
    assert len({r.attempt_key for r in requests}) == 2 * ROWS
    for name, v in by_variant(live).items():
        b = by_variant(batch)[name]
        assert b["batch_requests"] == 4
        assert b["cost_per_1k_usd"] == pytest.approx(v["cost_per_1k_usd"] * (4 * 0.5 + 8) / 12)


class FailFirst:
    """The first arrival of each request whose text is in ``texts`` gets ``failure``."""

    def __init__(self, inner: LabelZoo, texts: set[str], failure: Action) -> None:
        self.inner, self.texts, self.failure = inner, texts, failure
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Action:
        with self._lock:
            first = request.attempt_key not in self.seen
            self.seen.add(request.attempt_key)
        if first and request.last_user_text in self.texts:
            return self.failure
        return self.inner(request)


@pytest.mark.parametrize("api_kind", ["openai", "anthropic"])
def test_error_lines_of_a_batch_are_called_live(api_kind: str, data: Path, prices: Path) -> None:
    texts = [s.input_text() for s in load_dataset(data).samples]
    failing = set(texts[::3])  # 4 of the 12 rows
    with ScriptedServer(LabelZoo()) as srv:
        live = run_json(*run_args(data, prices, api_kind, srv.base_url))
    handler = FailFirst(LabelZoo(), failing, error(500, "scripted overload"))
    with ScriptedServer(handler) as srv:
        batch = run_json(*run_args(data, prices, api_kind, srv.base_url, "--batch", *POLL))
        requests = srv.requests
    same_scores(batch, live)
    retried = live_calls(srv)
    assert len(retried) == 2 * len(failing)
    assert {r.last_user_text for r in retried} == failing
    assert Counter(r.attempt_key for r in requests).most_common(1)[0][1] == 2
    assert all(v["batch_requests"] == ROWS - len(failing) for v in batch["variants"])


# --------------------------------------------------------------------------- kill -9, resume


def wait_for_batches(store_dir: Path, n: int, proc: subprocess.Popen[str]) -> str:
    """The run id, once the child has recorded ``n`` batch jobs (read-only reads)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        if RunStore.exists(store_dir):
            store = RunStore.open(store_dir, create=False)
            try:
                runs = store.list_runs()
                if runs and len(store.batches(runs[0].id)) >= n:
                    return runs[0].id
            except Exception:  # the child is still creating the store
                pass
            finally:
                store.close()
        time.sleep(0.05)
    raise AssertionError("the child recorded no batch")


@pytest.mark.parametrize("api_kind", ["openai", "anthropic"])
def test_kill_9_with_batches_in_flight_then_resume_collects_the_same_batches(
    api_kind: str, data: Path, prices: Path, tmp_path: Path
) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        live = run_json(*run_args(data, prices, api_kind, srv.base_url))
    store_dir = tmp_path / "killed"
    zoo = LabelZoo()
    with ScriptedServer(zoo, batch=BatchScript(hold=True)) as srv:
        args = run_args(data, prices, api_kind, srv.base_url, "--batch", *POLL)
        proc = subprocess.Popen(
            [sys.executable, "-m", "assay", *args, "--store", str(store_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        run_id = wait_for_batches(store_dir, 2, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        store = RunStore.open(store_dir)
        sent = store.batches(run_id)
        assert [r.collected for r in sent] == [False, False] and store.results(run_id) == []
        srv.batches.release()
        resumed = run_json("run", "--resume", run_id, "--json", "--store", str(store_dir))
        created = srv.batches.created
        requests = srv.requests
    # The resume found the two batches again: no second create, no request answered twice.
    assert [b.id for b in created] == [r.batch_id for r in sent]
    assert len(requests) == 2 * ROWS and set(zoo.arrivals.values()) == {1}
    assert all(r.batch_id for r in requests)
    same_scores(resumed, live)
    for name, v in by_variant(live).items():
        assert by_variant(resumed)[name]["cost_per_1k_usd"] == pytest.approx(
            v["cost_per_1k_usd"] / 2
        )
    assert all(r.collected for r in store.batches(run_id))
    assert store.integrity_problems() == []


# --------------------------------------------------------------------------- cache, budget


def test_cached_requests_are_not_batched_and_batch_answers_are_cached(
    data: Path, prices: Path
) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        base = [a for a in run_args(data, prices, "openai", srv.base_url) if a != "--no-cache"]
        first = run_json(*base, "--limit", "6")  # live: rows 1-6 go into the cache
        srv.reset_log()
        batch = run_json(*base, "--batch", *POLL)
        created = srv.batches.created
        assert [len(b.requests) for b in created] == [ROWS - 6] * 2  # rows 7-12 only
        srv.reset_log()
        again = run_json(*base)  # live again: every answer comes from the cache
        assert srv.count == 0
    assert first["status"] == batch["status"] == again["status"] == "complete"
    assert all(v["cached_requests"] == 6 for v in batch["variants"])
    assert all(v["cached_requests"] == ROWS for v in again["variants"])


def test_a_budget_stops_a_batch_run_at_the_batch_price_and_a_resume_finishes_it(
    data: Path, prices: Path
) -> None:
    """Each request reserves its worst case at the batch price: with room for about five,
    the run sends batches while they fit, then stops; what it spent is within the budget."""
    budget = 1.5 * max(worst_case_at_batch_price(s) for s in load_dataset(data).samples)
    with ScriptedServer(LabelZoo()) as srv:
        args = run_args(data, prices, "openai", srv.base_url, "--batch", *POLL)
        stopped = assay(*args, "--max-tokens", "200", "--max-cost", f"{budget:.8f}")
        result = json.loads(stopped.stdout)
        assert result["status"] == "stopped" and "Cost budget" in result["stopped_reason"]
        assert 0 < result["spent_usd"] <= budget
        n_first = len(srv.requests)
        resumed = run_json("run", "--resume", result["run_id"], "--json", "--max-cost", "1")
        assert len(srv.requests) == 2 * ROWS and n_first < 2 * ROWS
    assert resumed["status"] == "complete"
    assert all(v["n_requests"] == ROWS and v["n_errors"] == 0 for v in resumed["variants"])


def worst_case_at_batch_price(sample: Sample) -> float:
    """What a request reserves: every input byte a token, 200 output tokens, at half of
    $1 in / $4 out per million (LabelZoo's replies cost a small part of it)."""
    messages = load_prompt(PROMPT).render(sample)
    request = Request(messages=messages, params=GenerationParams(max_tokens=200))
    return (input_token_bound(request) * 1.0 + 200 * 4.0) / 1e6 * 0.5


# --------------------------------------------------------------------------- refusals, display


def test_a_provider_without_a_batch_api_is_refused_in_one_line(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n  - spec: openai/gpt-4o-mini\n  - spec: groq/llama\n    batch: true\n"
    )
    with ScriptedServer(LabelZoo()) as srv:
        cases = [
            ["-m", "ollama/llama3", "--base-url", srv.base_url, "--batch"],
            ["--config", str(config)],
        ]
        for flags in cases:
            proc = assay("run", str(data), PROMPT, *flags, "--metric", "label", env=_keys_env())
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1, proc.stderr
            assert "cannot run in batch mode" in lines[0] and "no batch API" in lines[0]
        assert srv.count == 0
    assert (
        not RunStore.exists(os.environ["ASSAY_STORE"])
        or not RunStore.open(os.environ["ASSAY_STORE"]).list_runs()
    )
    with pytest.raises(UserInputError, match="ollama has no batch API"):
        api.run(
            RunConfig(
                data=str(data),
                prompts=[PROMPT],
                models=[resolve_model("ollama/llama3", batch=True)],
                scoring=ScoringConfig(metrics=["label"]),
            )
        )


def _keys_env() -> dict[str, str | None]:
    return {"OPENAI_API_KEY": "sk-test", "GROQ_API_KEY": "gsk-test"}


def test_batch_and_adaptive_do_not_mix(data: Path) -> None:
    proc = assay(
        "run", str(data), PROMPT, "-m", "compat/a", "--base-url", "http://127.0.0.1:9/v1",
        "--metric", "label", "--batch", "--adaptive", "--margin", "0.1",
    )  # fmt: skip
    assert proc.returncode == 2 and "--adaptive and --batch do not mix" in proc.stderr


def test_progress_plan_and_table_show_the_batches(data: Path, prices: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        args = [a for a in run_args(data, prices, "openai", srv.base_url) if a != "--json"]
        proc = assay(*args, "--batch", *POLL, "--batch-max-requests", "5", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    # The plan shows the discount; the progress, the jobs (3 per model) and their requests.
    assert "compat/acc90 (batch -50%)" in proc.stderr
    assert "24/24 6 submitted · 0 in progress · 6 done" in proc.stderr
    assert "batch API: compat/acc90 (12 replies, -50% batch price)" in proc.stdout


def test_a_resume_keeps_the_runs_batch_settings(data: Path, prices: Path) -> None:
    proc = assay("run", "--resume", "20990101-000000-abcdef", "--batch")
    assert proc.returncode == 2 and "a resume keeps the run's own batch settings" in proc.stderr


def test_optimize_refuses_a_model_in_batch_mode(data: Path) -> None:
    model = resolve_model("compat/m", base_url="http://127.0.0.1:9/v1", batch=True)
    config = OptimizeConfig(
        data=str(data), prompt=PROMPT, model=model, scoring=ScoringConfig(metrics=["label"])
    )
    with pytest.raises(UserInputError, match="batch mode, which only assay run takes"):
        api.optimize(config)


def test_the_batch_cost_benchmark_runs_at_tiny_n(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    assert batch_cost.main(["--samples", "8", "--json", str(out)]) == 0
    live, batch, expiring = json.loads(out.read_text())
    assert [m["batch_requests"] for m in (live, batch, expiring)] == [0, 16, 12]
    assert [m["live_requests"] for m in (live, batch, expiring)] == [16, 0, 4]
    assert batch["spent_usd"] == pytest.approx(live["spent_usd"] / 2)
    assert [v["score"] for v in batch["variants"]] == [v["score"] for v in live["variants"]]


# --------------------------------------------------------------------------- the scripted server


def chat_line(custom_id: str, text: str) -> dict[str, Any]:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_scripted_openai_batches_hold_cancel_and_refuse_bad_files() -> None:
    lines = [chat_line("a", "one"), chat_line("b", "two")]
    jsonl = "".join(json.dumps(x) + "\n" for x in lines).encode()
    with ScriptedServer(echo(), batch=BatchScript(hold=True)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        upload = client.files.create(file=("b.jsonl", jsonl), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert client.batches.retrieve(batch.id).status == "in_progress"
        cancelled = client.batches.cancel(batch.id)
        assert cancelled.status == "cancelled" and cancelled.output_file_id is None
        assert cancelled.error_file_id is not None
        errors = client.files.content(cancelled.error_file_id).text.splitlines()
        assert [json.loads(e)["error"]["code"] for e in errors] == ["batch_cancelled"] * 2
        twice = client.files.create(file=("c.jsonl", jsonl + jsonl), purpose="batch")
        with pytest.raises(openai.BadRequestError, match="unique"):
            client.batches.create(
                input_file_id=twice.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        assert srv.count == 0  # nothing was answered


def test_scripted_anthropic_batches_answer_through_the_handler() -> None:
    requests = [
        {"custom_id": c, "params": {"model": "m", "max_tokens": 8, "messages": [m]}}
        for c, m in (
            ("a", {"role": "user", "content": "one"}),
            ("b", {"role": "user", "content": "two"}),
        )
    ]
    with ScriptedServer(echo(prefix="re: "), batch=BatchScript(delay=0.05)) as srv:
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{srv.port}", api_key="x")
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        assert batch.processing_status == "in_progress"
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            time.sleep(0.02)
        results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
        logged = srv.requests
        bad = [{**requests[0], "custom_id": "a b"}]
        with pytest.raises(anthropic.BadRequestError, match="custom_id"):
            client.messages.batches.create(requests=bad)  # type: ignore[arg-type]
    assert {c: r.type for c, r in results.items()} == {"a": "succeeded", "b": "succeeded"}
    texts = {
        c: getattr(r.message.content[0], "text", None)
        for c, r in results.items()
        if r.type == "succeeded"
    }
    assert texts == {"a": "re: one", "b": "re: two"}
    assert [(r.batch_id, r.is_anthropic) for r in logged] == [(batch.id, True)] * 2


def test_a_server_without_batch_endpoints_fails_the_run_in_one_line(
    data: Path, prices: Path
) -> None:
    with ScriptedServer(LabelZoo(), batch=BatchScript(enabled=False)) as srv:
        proc = assay(*run_args(data, prices, "openai", srv.base_url, "--batch", *POLL))
        assert srv.count == 0
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "the batch API answered HTTP 404" in lines[0] and "drop --batch" in lines[0]
    assert json.loads(proc.stdout)["status"] == "failed"


# --------------------------------------------------------------------------- prices


def test_batch_prices_come_from_the_provider_or_the_entry(tmp_path: Path) -> None:
    bundled = PriceTable.bundled()
    mini = bundled.lookup(resolve_model("openai/gpt-4o-mini"))
    assert mini is not None and mini.batch_discount == 0.5
    assert batch_price(mini) == mini.model_copy(
        update={"input_per_mtok": 0.075, "output_per_mtok": 0.3, "batch_discount": None}
    )
    assert bundled.lookup(resolve_model("groq/llama-3.1-8b-instant")).batch_discount is None  # type: ignore[union-attr]
    # A price of your own keeps the provider's discount unless it states one; a file may
    # give a provider's discount (here for a compat server).
    own = tmp_path / "prices.yaml"
    own.write_text(
        "batch_discounts: {compat: 0.25}\n"
        "openai/gpt-4o-mini: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
        "openai/gpt-4o: {input_per_mtok: 1.0, output_per_mtok: 2.0, batch_discount: 0.4}\n"
        "compat/m: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
    )
    table = bundled.merged(PriceTable.load(own))
    found = {
        spec: table.lookup(resolve_model(spec, base_url="http://127.0.0.1:9/v1"))
        for spec in ("openai/gpt-4o-mini", "openai/gpt-4o", "compat/m")
    }
    assert {s: p.batch_discount for s, p in found.items() if p} == {
        "openai/gpt-4o-mini": 0.5,
        "openai/gpt-4o": 0.4,
        "compat/m": 0.25,
    }
    rows = {r["model"]: r.get("batch_discount") for r in prices_json(table, "gpt-4o")}
    assert rows["openai/gpt-4o-mini"] == 0.5


def test_a_batch_discount_above_one_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text(
        json.dumps({"compat/m": {"input_per_mtok": 1, "output_per_mtok": 1, "batch_discount": 2}})
    )
    proc = assay("prices", "--prices", str(bad))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "batch_discount" in lines[0]
