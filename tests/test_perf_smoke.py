"""The perf scripts still run: tiny N, every request counted, one table row per configured cell.

No speed thresholds here (speed is what ``python -m perf.engine_throughput`` measures), but
every number checked could be wrong: request counts equal what was asked, a wall time cannot
beat the server's reply delay, CPU time is spent, the baseline row is the one stated.
Covered here: perf.common, perf.engine_throughput, perf.startup, perf.strategies; the peer,
cache and scale scripts are in test_perf_peers_smoke.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from perf import common, engine_throughput, startup, strategies
from perf.common import REPO_ROOT, ServerProcess
from perf.engine_throughput import (
    CLIENTS,
    COLUMNS,
    HTTP_CLIENTS,
    CellResult,
    CellSpec,
    measure,
    result_row,
)
from perf.startup import main_script, package_self_times, parse_importtime

from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal
from tests.perf_helpers import markdown_table

DELAY = 0.01


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(DELAY) as srv:
        yield srv


# --------------------------------------------------------------------------- perf.common


def chat(base_url: str) -> str:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=body.encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["choices"][0]["message"]["content"])


def test_server_process_counts_its_requests_and_stops() -> None:
    with ServerProcess(0.0, text="hello") as srv:
        before = srv.stats()
        assert [chat(srv.base_url) for _ in range(3)] == ["hello"] * 3
        after = srv.stats()
        pid = srv.pid
        assert after.requests - before.requests == 3
        assert after.cpu_s > before.cpu_s  # the server's own CPU, not this process's
        assert pid != os.getpid()
    with pytest.raises(RuntimeError, match="not running"):
        srv.stats()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_common_helpers(capsys: pytest.CaptureFixture[str]) -> None:
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert common.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert common.child_env()["PYTHONPATH"].split(os.pathsep)[0] == str(REPO_ROOT)
    assert common.machine_line().startswith(f"{os.cpu_count()} cores (")
    assert common.package_version("no-such-package-here") == "-"
    assert common.current_rss_mib() > 10 and common.peak_rss_mib() > 10  # MiB, not KiB
    common.print_table("T", ["name", "n"], [["a", "1"], ["b", "22"]], markdown=True)
    assert capsys.readouterr().out == "\n**T**\n\n| name | n |\n|---|---:|\n| a | 1 |\n| b | 22 |\n"
    common.print_table("Rich", ["name", "n"], [["alpha", "333"]], markdown=False)
    printed = capsys.readouterr().out
    assert "Rich" in printed and re.search(r"alpha\s*│\s*333", printed), printed


# --------------------------------------------------------------------------- engine_throughput


def _well_formed(result: CellResult, requests: int, concurrency: int) -> None:
    assert result.requests == requests
    assert (result.ok, result.errors, result.first_error) == (requests, 0, "")
    waves = math.ceil(requests / concurrency)
    # every request waits the server's (or the stub's) delay: no cell can beat that
    assert result.wall_s >= 0.9 * waves * DELAY
    assert result.cpu_s > 0
    assert result.peak_rss_mib > 10
    row = result_row(result)
    assert len(row) == len(COLUMNS)
    assert row[:3] == [str(concurrency), result.client, str(requests)]
    assert row[-1] == "0"  # errors


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_makes_exactly_the_requests_counted(server: ServerProcess, client: str) -> None:
    spec = CellSpec(client, 4, requests=20, delay=DELAY, base_url=server.base_url, warmup=4)
    before = server.stats().requests

    result = asyncio.run(measure(spec))

    _well_formed(result, 20, 4)
    expected = 24 if client in HTTP_CLIENTS else 0  # engine-noio never reaches the server
    assert server.stats().requests - before == expected


def test_engine_throughput_prints_a_row_per_client_and_the_sdk_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clients = ["socket", "sdk", "provider", "engine"]
    out = tmp_path / "cells.json"
    engine_throughput.main(
        ["--requests", "8", "--delay", str(DELAY), "--concurrency", "2",
         "--clients", ",".join(clients), "--json", str(out), "--markdown"]
    )  # fmt: skip
    printed = capsys.readouterr().out

    rows = markdown_table(printed, "Engine throughput vs the openai SDK it wraps (baseline)")
    assert [row["client"] for row in rows] == clients
    assert all((row["concurrency"], row["N"], row["errors"]) == ("2", "8", "0") for row in rows)
    assert all(row["limit req/s"] == "200" for row in rows)  # concurrency / delay
    (layers,) = markdown_table(printed, "What each layer adds")
    assert layers["concurrency"] == "2"
    assert re.fullmatch(r"\d+\.\d\dx", layers["engine/sdk req/s"]), layers  # vs the baseline
    assert re.fullmatch(r"[+-]\d+\.\d{3}", layers["engine - provider"]), layers
    assert layers["engine-noio"] == "-"  # not measured in this run
    cells = json.loads(out.read_text())["cells"]
    assert [c["client"] for c in cells] == clients
    for cell in cells:
        assert (cell["requests"], cell["ok"], cell["errors"], cell["warmup"]) == (8, 8, 0, 2)
        assert cell["server_requests"] == 10  # each cell ran in a child, counted by the server
        assert cell["cpu_s"] > 0 and cell["server_cpu_ms_per_request"] > 0
        assert cell["wall_s"] >= 0.9 * 4 * DELAY  # 8 requests, 2 at a time


# --------------------------------------------------------------------------- startup


def test_importtime_parsing() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |        100 |     numpy.core\n"
        "import time:        50 |        150 |   numpy\n"
        "import time:        30 |        180 | assay.scoring\n"
    )
    lines = parse_importtime(stderr)
    assert [(line.module, line.depth) for line in lines] == [
        ("numpy.core", 2),
        ("numpy", 1),
        ("assay.scoring", 0),
    ]
    assert package_self_times(lines) == {"numpy": 150, "assay": 30}
    assert "sys.argv = ['assay', '--help']" in main_script(["--help"])


def test_startup_times_the_baseline_and_assay_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    every = startup.commands()
    assert every[0].name == "python -c pass (baseline)"
    assert all(Path(c.argv[0]).exists() for c in every)
    kept = [c for c in every if c.name in ("python -c pass (baseline)", "assay --help")]
    monkeypatch.setattr(startup, "commands", lambda: kept)  # two commands keep the run short
    monkeypatch.setattr(startup, "IMPORT_TARGETS", {"assay --help": ("--help",)})
    out = tmp_path / "startup.json"

    startup.main(["--repeat", "1", "--target", "30", "--json", str(out), "--markdown"])

    printed = capsys.readouterr().out
    rows = markdown_table(printed, "Start-up wall time")
    assert [row["command"] for row in rows] == ["python -c pass (baseline)", "assay --help"]
    assert rows[0]["over baseline s"] == "+0.000" and rows[1]["exit"] == "0"
    assert re.search(r"`assay --help` median \d+\.\d{3} s: MEETS the 30 s target", printed)
    data = json.loads(out.read_text())
    assert [t["exit_code"] for t in data["timings"]] == [0, 0]
    assert all(t["median_s"] > 0 and t["median_no_pyc_s"] > 0 for t in data["timings"])
    help_imports = data["imports"]["assay --help"]
    assert help_imports["failure"] == ""
    assert help_imports["package_self_us"]["assay"] > 0
    assert len(help_imports["top_cumulative"]) == 10
    assert len(markdown_table(printed, "Top 10 imports of `assay --help`")) == 10
    assert re.search(r"Watched packages imported by `assay --help`: .*typer", printed)


# --------------------------------------------------------------------------- strategies


def scripted_smollm2(zoo: OptimizeZoo) -> Any:
    """One scripted model as both task and reasoning model, as ``local/smollm2`` is there."""

    def handler(request: ChatRequest) -> Action:
        text = "\n".join(str(m.get("content")) for m in request.messages)
        if "<prompt>" in text:  # the reasoner's instructions ask for a <prompt> block
            return reply(proposal(f"{MAGIC}: positive or negative."), output_tokens=20)
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
        return zoo._answer(system, request.last_user_text)

    return handler


def test_strategies_run_at_the_same_budget_on_the_same_test_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script runs the embedded model (minutes); here a scripted one stands in for it."""
    import assay.providers.specs as specs

    real_resolve = specs.resolve_model
    out = tmp_path / "rows.json"
    max_calls = 160  # 120 rows: val holds 24, enough for the accept rule to confirm MAGIC
    with ScriptedServer(scripted_smollm2(OptimizeZoo(["unused"]))) as srv:

        def resolve(spec: str, **kw: Any) -> Any:
            assert spec == "local/smollm2"
            return real_resolve("compat/smollm2", base_url=srv.base_url)

        monkeypatch.setattr(specs, "resolve_model", resolve)
        monkeypatch.setenv("OPENAI_COMPAT_API_KEY", "x")
        strategies.main(
            ["--rows", "120", "--max-calls", str(max_calls), "--max-iterations", "1",
             "--batch-size", "4", "--reasoning-max-tokens", "64", "--json", str(out),
             "--markdown"]
        )  # fmt: skip
        sent = srv.count

    rows = json.loads(out.read_text())
    assert [r["strategy"] for r in rows] == list(strategies.STRATEGIES)
    assert sum(r["calls"] for r in rows) == sent  # every call the server got is in a row
    assert all(0 < r["calls"] <= max_calls for r in rows)  # the same budget, kept
    assert len({(r["baseline_test"], r["n_test"]) for r in rows}) == 1  # one test split
    iterative = next(r for r in rows if r["strategy"] == "iterative")
    assert iterative["reasoning_calls"] >= 1 and iterative["accepted"] == 1
    assert iterative["final_test"] > iterative["baseline_test"]  # the scripted MAGIC prompt
    table = markdown_table(capsys.readouterr().out, "Strategies at the same call budget")
    assert [row["strategy"] for row in table] == list(strategies.STRATEGIES)
    printed = next(row for row in table if row["strategy"] == "iterative")
    assert printed["calls (reasoning)"] == f"{iterative['calls']} ({iterative['reasoning_calls']})"


def test_strategies_covers_every_registered_strategy_but_duel() -> None:
    """A strategy added to the registry is benchmarked too (duel needs a judge)."""
    from assay.optimizer.strategies import STRATEGY_TYPES

    assert set(strategies.STRATEGIES) == set(STRATEGY_TYPES) - {"duel"}
