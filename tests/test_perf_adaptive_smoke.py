"""``perf.adaptive_concurrency`` still runs: tiny N, every row counted, the baseline stated.

No speed threshold (speed is what ``python -m perf.adaptive_concurrency`` measures); every
number checked could be wrong: rows answered, requests sent against 429s, duplicates, the
baseline row, the limit column only for ``auto``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from perf import adaptive_concurrency

from tests.perf_helpers import markdown_table


def test_adaptive_concurrency_runs_every_cell_and_counts_every_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "auto.json"
    # A rate above what 40 rows in flight can ask (40 / 0.02 s): no row can run out of retries.
    argv = ["--rows", "40", "--rate", "2000", "--burst", "40", "--delay", "0.02"]
    assert (
        adaptive_concurrency.main([*argv, "--cells", "auto,4", "--markdown", "--json", str(out)])
        == 0
    )
    data = json.loads(out.read_text())
    cells = {c["concurrency"]: c for c in data["cells"]}
    assert list(cells) == ["auto", "4", "16"]  # the stated baseline is always measured
    for cell in cells.values():
        assert (cell["rc"], cell["status"], cell["rows_answered"]) == (0, "complete", 40)
        assert cell["duplicates"] == 0
        assert cell["sent"] == 40 + cell["limited"]  # each 429 sent again, nothing else
        assert cell["share_429"] == pytest.approx(cell["limited"] / cell["sent"])
        assert cell["req_per_s"] > 0 and cell["share_of_rate"] == cell["req_per_s"] / 2000
    assert cells["auto"]["limit"].startswith(tuple("0123456789"))  # auto reports its limit
    assert cells["16"]["limit"] == "–"
    rows = markdown_table(capsys.readouterr().out, "assay run against a token bucket")
    assert [row["concurrency"] for row in rows] == ["auto", "4", "16 (baseline)"]
    assert rows[2]["vs baseline"] == "1.00x"
    assert all(row["rows answered"] == "40/40" for row in rows)
