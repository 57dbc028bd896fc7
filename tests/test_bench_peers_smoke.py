"""The peer, cache and scale benchmarks still run and count correctly (tiny N, no timing).

Speed and memory are measured by ``python -m perf.cache_rerun`` / ``perf.data_scale`` /
``perf.peers``; the peers themselves (aevyra-verdict, aevyra-reflex) are not installed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from perf import cache_rerun, data_scale, peers


def test_cache_rerun_sends_nothing_the_second_time(tmp_path: Path) -> None:
    out = tmp_path / "cache.json"
    assert cache_rerun.main(["--samples", "20", "--delay", "0", "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    first, again = runs["first run (baseline)"], runs["identical re-run"]
    assert (first["server_requests"], first["cached_requests"]) == (20, 0)
    assert (again["server_requests"], again["cached_requests"]) == (0, 20)


def test_peers_counts_task_and_judge_requests(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    argv = ["--samples", "8", "--delay", "0", "--assay-concurrency", "4"]
    code = peers.main([*argv, "--peers-venv", str(tmp_path / "none"), "--json", str(out)])
    assert code == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["tool"] == "assay" and run["rc"] == 0
    assert run["server"] == {"requests": 16, "task": 8, "judge": 8}
    assert (run["exact"], run["judge"], run["errors"]) == (1.0, 0.75, 0)


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.0, 10.0), (0.5, 20.0), (1.0, 30.0), (0.9, 30.0)]
)
def test_rss_at_picks_the_nearest_sample(fraction: float, expected: float) -> None:
    trace = [(0.0, 10.0), (1.0, 20.0), (2.0, 30.0)]
    assert data_scale.rss_at(trace, fraction, 2.0) == expected
