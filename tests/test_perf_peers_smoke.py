"""The peer, cache and scale scripts still run and count correctly (tiny N, no timing).

Speed and memory are measured by ``python -m perf.cache_rerun`` / ``perf.data_scale`` /
``perf.peers`` / ``perf.optimizer_peers``. The peers themselves (aevyra-verdict, aevyra-reflex,
gepa) live in their own virtual environment (``ASSAY_PEERS_VENV``, default /tmp/peers-venv);
without them their side is skipped, and Assay's side of each comparison still runs.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest
from perf import cache_rerun, data_scale, gepa_peer, optimizer_peers, peers

from assay.testing import ScriptedServer, reply
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal
from tests.perf_helpers import PEERS_VENV, StandInModelServer, markdown_table, peer_or_skip

# --------------------------------------------------------------------------- cache_rerun


def test_cache_rerun_sends_nothing_the_second_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cache.json"
    argv = ["--samples", "20", "--delay", "0", "--concurrency", "4", "--markdown"]
    assert cache_rerun.main([*argv, "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    first, again = runs["first run (baseline)"], runs["identical re-run"]
    assert (first["rc"], first["status"], again["rc"], again["status"]) == (
        0,
        "complete",
        0,
        "complete",
    )
    assert (first["server_requests"], first["cached_requests"]) == (20, 0)
    assert (again["server_requests"], again["cached_requests"]) == (0, 20)
    assert first["cpu_s"] > 0 and again["cpu_s"] > 0  # the assay child's, from wait4
    rows = markdown_table(capsys.readouterr().out, "assay run, then the identical command")
    assert [row["run"] for row in rows] == ["first run (baseline)", "identical re-run"]
    assert [(row["server requests"], row["cached"]) for row in rows] == [("20", "0"), ("0", "20")]
    assert rows[0]["wall vs first"] == "1.00x"  # the stated baseline is the first run


# --------------------------------------------------------------------------- data_scale


def test_data_scale_runs_each_size_and_compares_with_the_smallest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scale.json"
    argv = ["--rows", "8,16", "--delay", "0", "--concurrency", "4", "--tracemalloc"]
    assert data_scale.main([*argv, "--top", "3", "--markdown", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    sizes = data["sizes"]
    assert [s["rows"] for s in sizes] == [8, 16]
    for size in sizes:
        assert size["status"] == "complete" and size["server_requests"] == size["rows"]
        assert size["run"]["rc"] == size["inspect"]["rc"] == 0
        assert size["run"]["cpu_s"] > 0 and size["run"]["peak_rss_mib"] > 10
    traced = data["tracemalloc"]
    assert traced["rows"] == 16  # the side run is on the largest size
    assert 0 < len(traced["load_top"]) <= 3 and 0 < len(traced["analyse_top"]) <= 3
    rows = markdown_table(capsys.readouterr().out, "assay run (delay 0.0 s, concurrency 4")
    assert [(row["rows"], row["requests"]) for row in rows] == [("8", "8"), ("16", "16")]
    base = rows[0]
    assert (base["wall vs base"], base["peak vs base"], base["inspect vs base"]) == (
        "1.00x",
        "1.00x",
        "1.00x",
    )


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.0, 10.0), (0.5, 20.0), (1.0, 30.0), (0.9, 30.0)]
)
def test_rss_at_picks_the_nearest_sample(fraction: float, expected: float) -> None:
    trace = [(0.0, 10.0), (1.0, 20.0), (2.0, 30.0)]
    assert data_scale.rss_at(trace, fraction, 2.0) == expected


# --------------------------------------------------------------------------- peers


def test_peers_runs_assay_alone_when_verdict_is_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "peers.json"
    argv = ["--samples", "8", "--delay", "0", "--assay-concurrency", "2,4", "--markdown"]
    missing = tmp_path / "no-venv"
    assert peers.main([*argv, "--peers-venv", str(missing), "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [(r["tool"], r["workers"], r["rc"]) for r in runs] == [("assay", 2, 0), ("assay", 4, 0)]
    for run in runs:
        assert run["server"] == {"requests": 16, "task": 8, "judge": 8}
        assert (run["exact"], run["judge"], run["errors"]) == (1.0, 0.75, 0)
    printed = capsys.readouterr().out
    assert f"{missing}/bin/aevyra-verdict not found: aevyra-verdict skipped" in printed
    rows = markdown_table(printed, "8 samples, task + judge per sample")
    assert [(row["tool"], row["workers"]) for row in rows] == [("assay", "2"), ("assay", "4")]
    assert all(row["server req/sample"] == "2.00" for row in rows)
    # without the peer, the best Assay run is the baseline of the speed column
    assert sorted(row["speed vs verdict best"] for row in rows)[-1] == "1.00x"


def test_peers_compares_assay_with_aevyra_verdict(tmp_path: Path) -> None:
    peer_or_skip("aevyra-verdict", '"aevyra-verdict[openai]"')
    out = tmp_path / "peers.json"
    argv = ["--samples", "8", "--delay", "0", "--verdict-workers", "2", "--assay-concurrency", "2"]
    assert peers.main([*argv, "--peers-venv", str(PEERS_VENV), "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [(r["tool"], r["rc"]) for r in runs] == [("aevyra-verdict", 0), ("assay", 0)]
    for run in runs:
        assert run["server"] == {"requests": 16, "task": 8, "judge": 8}
        assert run["exact"] == 1.0 and run["errors"] == 0


def test_peers_reads_both_tools_result_files(tmp_path: Path) -> None:
    verdict = tmp_path / "verdict.json"
    model = {"exact_mean": 1.0, "llm_judge_gpt_mean": 0.75, "success_rate": 0.875}
    verdict.write_text(json.dumps({"models": {"local/m": model}}))
    assert peers.verdict_scores(verdict, 8) == (1.0, 0.75, 1)
    assert peers.verdict_scores(tmp_path / "missing.json", 8) == (None, None, -1)
    assay = tmp_path / "assay.json"
    metrics = {"exact": {"mean": 1.0}, "judge:compat/judge": {"mean": 0.5}}
    assay.write_text(json.dumps({"variants": [{"metrics": metrics, "n_errors": 2}]}))
    assert peers.assay_scores(assay) == (1.0, 0.5, 2)


# --------------------------------------------------------------------------- optimizer_peers


class ScriptedModelServer(StandInModelServer):
    """The optimize zoo behind ``optimizer_peers.ModelServer``'s interface (the real server's
    counts are tested below, through ``serve``)."""

    started: ClassVar[list[ScriptedModelServer]] = []

    def __init__(self, port: int, max_tokens: int, reasoning_max_tokens: int) -> None:
        # "auto" (the default strategy) first asks which strategy to use: iterative
        plan = proposal(f"{MAGIC}: positive or negative.") + "\nSTRATEGY: iterative"
        self.zoo = OptimizeZoo([plan])
        super().__init__(self.zoo)
        self.started.append(self)

    def roles(self) -> list[str]:
        return [model for model, _, _ in self.zoo.log]


MAX_CALLS = 250
ROWS = 180  # 120 to optimize: val holds 24 rows, enough for the accept rule to confirm MAGIC


def run_optimizer_peers(
    tools: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], ScriptedModelServer]:
    monkeypatch.setattr(optimizer_peers, "ModelServer", ScriptedModelServer)
    monkeypatch.setattr(ScriptedModelServer, "started", [])
    out = tmp_path / "optimizers.json"
    argv = ["--tools", tools, "--rows", str(ROWS), "--seeds", "0", "--max-calls", str(MAX_CALLS)]
    code = optimizer_peers.main(
        [*argv, "--peers-venv", str(PEERS_VENV), "--markdown", "--json", str(out)]
    )
    assert code == 0
    records: list[dict[str, Any]] = json.loads(out.read_text())
    (server,) = ScriptedModelServer.started
    return records, server


def test_optimizer_peers_assay_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (record,), server = run_optimizer_peers("assay", tmp_path, monkeypatch)
    assert (record["tool"], record["seed"], record["rc"]) == ("assay", 0, 0)
    calls = record["calls"]
    spent = calls["task"] + calls["reasoning"]
    assert calls["reasoning"] >= 1 and spent <= MAX_CALLS  # it optimized, within the budget
    assert record["own_calls"] == spent  # what Assay says it spent is what the server got
    # the held-out scoring (baseline and final prompt, a third of the rows each) is outside
    assert len(server.zoo.log) == spent + 2 * (ROWS // 3)
    assert record["accepted"] == 1 and record["own_final"] > record["own_baseline"]
    assert MAGIC in record["best_prompt"]  # the scripted reasoner's proposal won
    assert 0 <= record["baseline_heldout"] <= 1 and 0 <= record["final_heldout"] <= 1
    (row,) = markdown_table(capsys.readouterr().out, f"{ROWS} demo rows (2/3 to optimize")
    assert (row["tool"], row["exit"], row["prompt changed"]) == ("assay", "ok", "yes")
    assert row["calls"] == str(spent)
    assert row["task/reasoning"] == f"{calls['task']}/{calls['reasoning']}"
    gain = record["final_heldout"] - record["baseline_heldout"]
    assert row["gain"] == f"{gain:+.3f}"
    assert row["calls vs budget"] == f"{spent / MAX_CALLS:.2f}x"


def test_optimizer_peers_gepa_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = peer_or_skip("python", "gepa")
    if subprocess.run([str(python), "-c", "import gepa"], check=False).returncode != 0:
        pytest.skip(f"gepa is not installed in {PEERS_VENV} ({PEERS_VENV}/bin/pip install gepa)")
    (record,), _ = run_optimizer_peers("gepa", tmp_path, monkeypatch)
    assert (record["tool"], record["rc"]) == ("gepa", 0), record["tail"]
    calls = record["calls"]
    assert calls["task"] + calls["reasoning"] <= MAX_CALLS
    assert record["own_calls"] == calls["task"] + calls["reasoning"]  # gepa_peer's own count


@pytest.mark.model
def test_optimizer_peers_reflex_side(tmp_path: Path) -> None:
    """aevyra-reflex's ``local/`` provider looks at port 11434: the real model server there."""
    peer_or_skip("aevyra-reflex", "aevyra-reflex")
    if not port_is_free(REFLEX_PORT):
        pytest.skip(f"port {REFLEX_PORT} is in use (another model server); reflex needs it")
    out = tmp_path / "optimizers.json"
    argv = ["--tools", "reflex", "--rows", "12", "--seeds", "0", "--reflex-iterations", "1"]
    argv += ["--reflex-batch", "2", "--reasoning-max-tokens", "64"]
    assert optimizer_peers.main([*argv, "--peers-venv", str(PEERS_VENV), "--json", str(out)]) == 0
    (record,) = json.loads(out.read_text())
    assert (record["tool"], record["rc"]) == ("reflex", 0), record["tail"]
    assert record["calls"]["task"] > 0 and record["calls"]["errors"] == 0


REFLEX_PORT = 11434  # fixed by aevyra-reflex's ``local/`` provider


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def completion(base_url: str, model: str, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Write a long story about a film."}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


@pytest.mark.model
def test_optimizer_peers_model_server_caps_and_counts_by_role() -> None:
    """The embedded model behind the comparison: each role capped, each call counted once."""
    with optimizer_peers.ModelServer(free_port(), 2, 8) as server:
        task = completion(server.base_url, "smollm2", 500)
        reasoning = completion(server.base_url, "reasoner", 5000)
        counts = server.counts()
    assert counts == {"task": 1, "reasoning": 1, "errors": 0}
    assert 0 < task["usage"]["completion_tokens"] <= 2  # --max-tokens, whatever was asked
    assert 2 < reasoning["usage"]["completion_tokens"] <= 8  # --reasoning-max-tokens


def test_gepa_peer_script_is_where_optimizer_peers_runs_it() -> None:
    assert Path(gepa_peer.__file__) == optimizer_peers.GEPA_PEER


# --------------------------------------------------------------------------- gepa_peer


def test_gepa_peer_client_counts_its_calls_by_role() -> None:
    """The stdlib half of gepa_peer.py (no gepa needed): chat, batches, reflection."""

    def handler(request: Any) -> Any:
        return reply(f" {request.model}:{request.last_user_text} ")

    with ScriptedServer(handler) as srv:
        client = gepa_peer.Client(srv.base_url, seed=3, workers=2)
        batch = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]
        assert client.batch_complete(batch, max_workers=8) == [f"smollm2:q{i}" for i in range(5)]
        assert client.reflect("why?").strip() == "reasoner:why?"
        bodies = [r.body for r in srv.requests]
    assert client.calls == {"task": 5, "reasoning": 1} and client.total() == 6 == len(bodies)
    assert {(b["temperature"], b["seed"]) for b in bodies} == {(0.0, 3)}


def test_gepa_peer_optimizes_against_a_scripted_server(tmp_path: Path) -> None:
    pytest.importorskip("gepa", reason="gepa is not installed (pip install gepa)")
    lines = (optimizer_peers.DEMO / "sentiment.jsonl").read_text().splitlines()[:12]
    rows = [json.loads(line) for line in lines]
    opt = tmp_path / "opt.jsonl"
    opt.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompt = tmp_path / "prompt.md"
    prompt.write_text((optimizer_peers.DEMO / "sentiment_prompt.md").read_text())
    zoo = OptimizeZoo([proposal(f"{MAGIC}: positive or negative.")])
    with ScriptedServer(zoo) as srv:
        code = gepa_peer.main(
            ["--opt", str(opt), "--prompt", str(prompt), "--base-url", srv.base_url,
             "--max-calls", "30", "--out", str(tmp_path / "best.md"),
             "--result", str(tmp_path / "result.json")]
        )  # fmt: skip
        sent = srv.count
    assert code == 0
    summary = json.loads((tmp_path / "result.json").read_text())
    assert sum(summary["calls"].values()) == sent <= 30
    assert (summary["train"], summary["val"]) == (6, 6)
    assert re.search(r"\S", (tmp_path / "best.md").read_text())
