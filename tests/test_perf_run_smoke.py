"""``perf.run_throughput`` still runs: tiny N, every request counted, every cell present.

No speed threshold (speed is what ``python -m perf.run_throughput`` measures); every number
checked could be wrong: the server's request count per cell, the split over processes, the
rate against the limit it cannot beat, CPU spent, the goals column judged on the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from perf import run_throughput

from tests.perf_helpers import markdown_table

SRC = Path(__file__).resolve().parent.parent / "src"


def test_run_throughput_measures_every_cell_and_counts_every_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.json"
    argv = ["--rows", "24", "--delay", "0.02", "--concurrency", "4", "--processes", "2"]
    argv += ["--baseline-src", str(SRC), "--cache", "--markdown", "--json", str(out)]
    assert run_throughput.main(argv) == 0
    data = json.loads(out.read_text())
    cells = {c["what"]: c for c in data["cells"]}
    assert list(cells) == [
        "engine alone", "assay run (before)", "assay run", "assay run (before), cache on",
        "assay run, cache on", "assay run x 2 processes",
    ]  # fmt: skip
    for cell in cells.values():
        assert cell["requests"] == 24 and cell["errors"] == 0  # each row called once
        assert cell["concurrency"] == 4 and cell["cpu_s"] > 0
        assert 0 < cell["share_of_limit"] <= 1.0  # 4 calls of 0.02 s at a time, no faster
        assert cell["share_of_limit"] == pytest.approx(cell["req_per_s"] * 0.02 / 4)
    assert cells["assay run x 2 processes"]["processes"] == 2
    assert cells["assay run"]["fixed_cpu_s"] > 0 and cells["engine alone"]["wall_s"] is None
    whole = cells["assay run"]
    assert whole["marginal_cpu_ms"] == pytest.approx(
        1000 * (whole["cpu_s"] - whole["fixed_cpu_s"]) / 24
    )
    rows = markdown_table(capsys.readouterr().out, "assay run as a whole process")
    assert [r["what"] for r in rows] == list(cells)
    assert rows[0]["goals"] == "-" and rows[0]["whole wall s"] == "-"
    for row in rows[1:]:  # 24 rows cannot amortise start-up: 1 ms per request is missed
        assert row["goals"].startswith("misses") and "> 1.0 ms" in row["goals"]
