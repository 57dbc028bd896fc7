"""The benchmarks still run: tiny N, well-formed rows, every request counted by the server.

No timing assertions here: speed is measured by ``python -m perf.engine_throughput``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from perf.common import ServerProcess
from perf.engine_throughput import (
    CLIENTS,
    COLUMNS,
    HTTP_CLIENTS,
    OVERHEAD_COLUMNS,
    CellResult,
    CellSpec,
    Options,
    measure,
    overhead_rows,
    result_row,
    run_benchmark,
)
from perf.startup import main_script, package_self_times, parse_importtime

DELAY = 0.01


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(DELAY) as srv:
        yield srv


def _well_formed(result: CellResult, requests: int) -> None:
    assert result.requests == requests
    assert (result.ok, result.errors, result.first_error) == (requests, 0, "")
    assert result.wall_s > 0
    assert result.cpu_s >= 0
    assert result.peak_rss_mib > 0
    row = result_row(result)
    assert len(row) == len(COLUMNS)
    assert all(isinstance(cell, str) and cell for cell in row)


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_makes_exactly_the_requests_counted(server: ServerProcess, client: str) -> None:
    spec = CellSpec(client, 4, requests=20, delay=DELAY, base_url=server.base_url, warmup=4)
    before = server.stats().requests

    result = asyncio.run(measure(spec))

    _well_formed(result, 20)
    expected = 24 if client in HTTP_CLIENTS else 0  # engine-noio never reaches the server
    assert server.stats().requests - before == expected


def test_run_benchmark_in_child_processes_reports_server_counts() -> None:
    options = Options(requests=12, delay=DELAY, concurrency=(3,), clients=("socket", "engine"))

    results = run_benchmark(options)

    assert [r.client for r in results] == ["socket", "engine"]
    for result in results:
        _well_formed(result, 12)
        assert result.warmup == 3
        assert result.server_requests == 15
        assert result.server_cpu_ms_per_request is not None
    rows = overhead_rows(results)
    assert len(rows) == 1
    assert len(rows[0]) == len(OVERHEAD_COLUMNS)


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
