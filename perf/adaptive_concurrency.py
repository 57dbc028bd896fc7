"""``--concurrency auto`` against a rate-limited endpoint, next to fixed concurrencies.

    python -m perf.adaptive_concurrency [--rows 5000] [--rate 200] [--burst 20] [--delay 0.1]
        [--cells auto,16,256] [--quick] [--markdown] [--json PATH]

The scripted server runs in its own process behind a token bucket
(``assay.testing.TokenBucket``: ``--rate`` requests per second, bursts of ``--burst``, a 429
with Retry-After above it) and answers each request it lets through after ``--delay`` s. For
each cell a fresh server starts and the real CLI runs a fresh run of ``--rows`` rows
(``assay run DATA PROMPT -m compat/m --base-url URL --metric label --no-cache --json``) with
that ``--concurrency``. The baseline is fixed concurrency 16, Assay's default.

Throughput is measured by the server: requests let through, over the time from the first
request to the last one let through, plus one reply delay (the process's start-up and
analysis are not in it). Goals for ``auto``: within 90% of ``--rate``, 429s under 5% of the
requests sent, every row answered exactly once (no row failed, none let through twice).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perf.cache_rerun import run_cli, write_dataset, write_prompt
from perf.common import machine_line, print_table, start_child, stop_child

BASELINE = "16"
GOAL_SHARE_OF_RATE = 0.90
GOAL_429_SHARE = 0.05


# --------------------------------------------------------------------------- server child


class _Timed:
    """The bucket, with the time of the first request and of the last one let through."""

    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket
        self.first: float | None = None
        self.last_ok: float | None = None
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> Any:
        now = time.monotonic()
        accepted = self.bucket.accepted
        action = self.bucket(request)
        with self._lock:
            self.first = now if self.first is None else self.first
            if self.bucket.accepted > accepted:
                self.last_ok = now
        return action

    def stats(self) -> dict[str, Any]:
        with self._lock:
            window = (self.last_ok or 0.0) - (self.first or 0.0)
        return {
            "accepted": self.bucket.accepted,
            "limited": self.bucket.limited,
            "distinct_accepted": len(self.bucket.accepted_keys),
            "duplicates": len(self.bucket.duplicates()),
            "window_s": max(0.0, window),
        }


def serve(argv: Sequence[str]) -> None:
    """The server child: print the port, answer ``stats`` until stdin closes."""
    from assay.testing import ScriptedServer, TokenBucket, constant, reply

    parser = argparse.ArgumentParser(prog="python -m perf.adaptive_concurrency --serve")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--burst", type=float, required=True)
    parser.add_argument("--delay", type=float, required=True)
    args = parser.parse_args(argv)
    timed = _Timed(
        TokenBucket(constant(reply("positive", delay=args.delay)), args.rate, args.burst)
    )
    with ScriptedServer(timed) as srv:
        print(f"port {srv.port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps(timed.stats()), flush=True)


class BucketServer:
    def __init__(self, rate: float, burst: float, delay: float) -> None:
        command = [sys.executable, "-m", "perf.adaptive_concurrency", "--serve"]
        flags = ["--rate", str(rate), "--burst", str(burst), "--delay", str(delay)]
        self._proc, port = start_child([*command, *flags], "rate-limited server")
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stats(self) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        return dict(json.loads(self._proc.stdout.readline()))

    def stop(self) -> None:
        stop_child(self._proc)


# --------------------------------------------------------------------------- cells


@dataclass
class Cell:
    concurrency: str
    rc: int
    status: str | None
    rows_answered: int  # rows with a response (not failed)
    rows_failed: int
    sent: int  # requests the server saw
    limited: int  # of those, answered 429
    duplicates: int  # rows let through more than once
    req_per_s: float
    share_of_rate: float
    limit: str  # auto: the limit at the end (lowest-highest, cuts)
    wall_s: float
    cpu_ms_per_row: float

    @property
    def share_429(self) -> float:
        return self.limited / self.sent if self.sent else 0.0


def measure(concurrency: str, args: argparse.Namespace, work: Path) -> Cell:
    data = write_dataset(work / "data.jsonl", args.rows)
    prompt = write_prompt(work / "prompt.md")
    server = BucketServer(args.rate, args.burst, args.delay)
    try:
        command = [
            "run", str(data), str(prompt), "-m", "compat/m", "--base-url", server.base_url,
            "--metric", "label", "--store", str(work / f"store-{concurrency}"), "--no-cache",
            "--max-tokens", "4", "--concurrency", concurrency, "--json",
        ]  # fmt: skip
        run = run_cli(command, cwd=work)
        stats = server.stats()
    finally:
        server.stop()
    if run.rc != 0:
        print(f"--concurrency {concurrency}: exit {run.rc}\n{run.stderr_tail}")
    return _cell(concurrency, args, run, stats)


def _cell(concurrency: str, args: argparse.Namespace, run: Any, stats: dict[str, Any]) -> Cell:
    output = run.output or {}
    variants = output.get("variants") or [{}]
    errors = sum(int(v.get("n_errors") or 0) for v in variants)
    answered = sum(int(v.get("n_requests") or 0) for v in variants) - errors
    rate = stats["accepted"] / (stats["window_s"] + args.delay) if stats["accepted"] else 0.0
    return Cell(
        concurrency=concurrency,
        rc=run.rc,
        status=output.get("status"),
        rows_answered=answered,
        rows_failed=errors,
        sent=stats["accepted"] + stats["limited"],
        limited=stats["limited"],
        duplicates=stats["duplicates"],
        req_per_s=rate,
        share_of_rate=rate / args.rate,
        limit=_limit_text(output.get("endpoints") or []),
        wall_s=run.wall_s,
        cpu_ms_per_row=1000 * run.cpu_s / max(1, args.rows),
    )


def _limit_text(endpoints: list[dict[str, Any]]) -> str:
    limits = [e["limit"] for e in endpoints if e.get("limit")]
    if not limits:
        return "–"
    lim = limits[0]
    return f"{lim['final']} ({lim['lowest']}–{lim['highest']}, {lim['decreases']} cuts)"


def verdict(cell: Cell, rows: int) -> str:
    """Whether the cell meets the goals set for ``auto`` (every cell is judged alike)."""
    misses = []
    if cell.share_of_rate < GOAL_SHARE_OF_RATE:
        misses.append("slow")
    if cell.share_429 >= GOAL_429_SHARE:
        misses.append("429s")
    if cell.rows_answered != rows:
        misses.append("rows failed")
    if cell.duplicates:
        misses.append("duplicates")
    return "meets goals" if not misses else "misses: " + ", ".join(misses)


def row(cell: Cell, base: Cell, rows: int) -> list[str]:
    vs_base = cell.req_per_s / base.req_per_s if base.req_per_s else 0.0
    return [
        cell.concurrency + (" (baseline)" if cell.concurrency == BASELINE else ""),
        f"{cell.rows_answered:,}/{rows:,}",
        f"{cell.sent:,}",
        f"{cell.share_429:.1%}",
        str(cell.duplicates),
        f"{cell.req_per_s:,.0f}",
        f"{cell.share_of_rate:.0%}",
        f"{vs_base:.2f}x",
        cell.limit,
        f"{cell.cpu_ms_per_row:.2f}",
        verdict(cell, rows),
    ]


COLUMNS = [
    "concurrency", "rows answered", "requests sent", "429 share", "duplicates", "req/s",
    "% of rate", "vs baseline", "limit (end, range, cuts)", "CPU ms/row", "goals",
]  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m perf.adaptive_concurrency")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--burst", type=float, default=20.0)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--cells", default=f"auto,{BASELINE},256")
    parser.add_argument("--quick", action="store_true", help="1,000 rows")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows, 1000)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    args.cells = cells if BASELINE in cells else [*cells, BASELINE]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
        return 0
    args = parse_args(argv)
    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="assay-auto-") as tmp:
        cells = {c: measure(c, args, Path(tmp)) for c in args.cells}
    title = (
        f"assay run against a token bucket of {args.rate:g} req/s (burst {args.burst:g}), "
        f"{args.delay:g} s per reply, {args.rows:,} rows"
    )
    rows = [row(cell, cells[BASELINE], args.rows) for cell in cells.values()]
    print_table(title, COLUMNS, rows, markdown=args.markdown)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        payload = {
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "cells": [{**asdict(c), "share_429": c.share_429} for c in cells.values()],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if all(c.rc == 0 for c in cells.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
