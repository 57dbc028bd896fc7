"""``python -m perf.shards`` still runs and counts correctly (tiny N, no timing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from perf import shards


def test_shards_then_merge_equal_the_whole_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards.json"
    argv = ["--rows", "30", "--shards", "3", "--delay", "0", "--concurrency", "4", "--markdown"]
    assert shards.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    whole, split, merge = result["steps"]
    assert result["merged_equals_whole"] is True
    assert [s["processes"] for s in (whole, split, merge)] == [1, 3, 1]
    assert [s["rc"] for s in (whole, split, merge)] == [0, 0, 0]
    # Every row is called once unsharded and once over the shards; merging calls nothing.
    assert (whole["requests"], split["requests"], merge["requests"]) == (30, 30, 0)
    assert all(s["wall_s"] > 0 and s["cpu_s"] > 0 for s in (whole, split, merge))
    printed = capsys.readouterr().out
    assert "| assay merge of the 3 shard runs | 1 | 0 | 0 |" in printed


def test_comparable_leaves_out_only_the_timed_fields_and_the_run_id() -> None:
    report = {
        "run_id": "a",
        "merged_from": ["b"],
        "pareto_quality_latency": ["m"],
        "status": "complete",
        "variants": [{"variant": "m", "latency_p50_ms": 1.0, "n_requests": 3}],
    }
    assert shards.comparable(report) == {
        "status": "complete",
        "variants": [{"variant": "m", "n_requests": 3}],
    }
