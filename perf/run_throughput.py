"""A whole ``assay run`` process against the limit, next to the engine alone, in one run.

    python -m perf.run_throughput [--rows 5000] [--delay 0.1] [--concurrency 16,64,256]
        [--processes 2] [--baseline-src DIR] [--cache] [--repeat 1] [--quick] [--markdown]
        [--json PATH]

The scripted server runs in its own process and answers every request after ``--delay`` s; it
records when the first request of a cell arrived and when the last one did. For each
concurrency, in this order:

- ``engine alone``: ``Engine.complete`` in a fresh process, cache off, ``--rows`` calls after
  a warm-up wave (``perf.engine_throughput``'s ``engine`` cell): the bar;
- with ``--baseline-src DIR``: ``assay run`` as below with ``assay`` imported from ``DIR``
  (another checkout's ``src``, e.g. ``git archive HEAD | tar -x -C /tmp/before``): before and
  after on the same machine in the same run;
- ``assay run``: the real CLI on a fresh store, ``--rows`` rows of a flat JSONL, ``--metric
  label --no-cache``: reading the data, calls, scoring, the store, progress, the analysis;
- with ``--cache``: the same commands with the response cache on (Assay's default; a fresh
  cache, so every call is a miss and a write);
- with ``--processes N``: N ``assay run`` processes at once, each on its own 1/N of the rows
  at concurrency/N, with its own store (what running shards side by side reaches).

Throughput is the server's: requests over the time from the first request to the last one,
plus one reply delay (the process's start-up and analysis are not in it; the engine cell
leaves out its warm-up the same way). The whole process is shown too: rows over its wall time.
CPU per request is the whole process's (user + system, from ``wait4``) over the requests, so
start-up and analysis are in it; a 1-row run measured first gives that fixed part, and the
column beyond it is what each further request costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perf.cache_rerun import write_dataset, write_prompt
from perf.common import REPO_ROOT, child_env, machine_line, print_table, start_child, stop_child
from perf.engine_throughput import CellSpec, measure_in_child

PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
GOAL_SHARE = 0.90
GOAL_CPU_MS = 1.0


# --------------------------------------------------------------------------- server child


class _Window:
    """The handler, with the number of requests and the times of the first and the last."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.first: float | None = None
            self.last: float | None = None

    def __call__(self, request: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            self.requests += 1
            self.first = now if self.first is None else self.first
            self.last = now
        return self.handler(request)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            span = (self.last or 0.0) - (self.first or 0.0)
            return {"requests": self.requests, "span_s": span, "cpu_s": time.process_time()}


def serve(argv: Sequence[str]) -> None:
    """The server child: print the port; answer ``stats`` and ``reset`` until stdin closes."""
    from assay.testing import ScriptedServer, constant, reply

    parser = argparse.ArgumentParser(prog="python -m perf.run_throughput --serve")
    parser.add_argument("--delay", type=float, required=True)
    args = parser.parse_args(argv)
    window = _Window(constant(reply("positive", delay=args.delay)))
    with ScriptedServer(window) as srv:
        print(f"port {srv.port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "reset":
                window.reset()
            print(json.dumps(window.stats()), flush=True)


class WindowServer:
    def __init__(self, delay: float) -> None:
        command = [sys.executable, "-m", "perf.run_throughput", "--serve", "--delay", str(delay)]
        self._proc, port = start_child(command, "scripted server")
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def ask(self, what: str) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(what + "\n")
        self._proc.stdin.flush()
        return dict(json.loads(self._proc.stdout.readline()))

    def stop(self) -> None:
        stop_child(self._proc)


# --------------------------------------------------------------------------- cells


@dataclass
class Cell:
    what: str
    concurrency: int
    processes: int
    requests: int  # requests the server received in the cell (warm-up excluded)
    req_per_s: float
    share_of_limit: float
    wall_s: float | None  # whole processes (None for the engine cell)
    cpu_s: float  # all processes of the cell, user + system
    peak_rss_mib: float
    errors: int
    fixed_cpu_s: float = 0.0  # a 1-row run's CPU, per process

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.requests if self.requests else 0.0

    @property
    def marginal_cpu_ms(self) -> float:
        extra = self.cpu_s - self.processes * self.fixed_cpu_s
        return 1000 * extra / self.requests if self.requests else 0.0


@dataclass
class Proc:
    rc: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    errors: int
    stderr_tail: str


def assay_command(src: Path | None) -> tuple[list[str], dict[str, str]]:
    """How to start ``assay``: this checkout's, or the one whose ``src`` is ``src``."""
    env = child_env()
    env.setdefault("OPENAI_COMPAT_API_KEY", "x")
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env["PYTHONPATH"]])
    return [str(PYTHON), "-m", "assay"], env


@dataclass(frozen=True)
class Launch:
    """Which ``assay run`` processes a cell starts: one per data file, all at once."""

    what: str
    data: list[Path]
    src: Path | None = None  # another checkout's ``src`` (None: this one)
    cache: bool = False  # the response cache on (a fresh one: every call a miss and a write)


def run_args(
    launch: Launch, data: Path, prompt: Path, base_url: str, concurrency: int, store: Path
) -> list[str]:
    return [
        "run", str(data), str(prompt), "-m", "compat/m", "--base-url", base_url,
        "--metric", "label", *([] if launch.cache else ["--no-cache"]),
        "--concurrency", str(concurrency), "--store", str(store), "--json",
    ]  # fmt: skip


def start(command: list[str], env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=out.parent)


def wait(proc: subprocess.Popen[bytes], out: Path, started: float) -> Proc:
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    try:
        report = json.loads(out.read_text())
        errors = sum(int(v.get("n_errors") or 0) for v in report["variants"])
    except (json.JSONDecodeError, KeyError, TypeError):
        errors = -1
    return Proc(
        rc=os.waitstatus_to_exitcode(status),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,
        errors=errors,
        stderr_tail=out.with_suffix(".err").read_text()[-800:],
    )


def run_processes(
    launch: Launch, prompt: Path, server: WindowServer, concurrency: int
) -> list[Proc]:
    """One ``assay run`` per data file, all at once, each on a fresh store."""
    command, env = assay_command(launch.src)
    procs = []
    started = time.perf_counter()
    for i, data in enumerate(launch.data):
        store = data.parent / f"store-{time.monotonic_ns()}-{i}"
        each = concurrency // len(launch.data)
        args = run_args(launch, data, prompt, server.base_url, each, store)
        procs.append(start([*command, *args], env, data.parent / f"out-{i}.json"))
    done = [wait(p, data.parent / f"out-{i}.json", started) for i, p in enumerate(procs)]
    for p in done:
        if p.rc != 0:
            print(f"assay run exit {p.rc}:\n{p.stderr_tail}", file=sys.stderr)
    return done


def whole_cell(
    launch: Launch, prompt: Path, server: WindowServer, concurrency: int, delay: float,
    fixed_cpu_s: float,
) -> Cell:  # fmt: skip
    server.ask("reset")
    procs = run_processes(launch, prompt, server, concurrency)
    stats = server.ask("stats")
    rate = stats["requests"] / (stats["span_s"] + delay) if stats["requests"] else 0.0
    return Cell(
        what=launch.what,
        concurrency=concurrency,
        processes=len(launch.data),
        requests=stats["requests"],
        req_per_s=rate,
        share_of_limit=rate * delay / concurrency,
        wall_s=max(p.wall_s for p in procs),
        cpu_s=sum(p.cpu_s for p in procs),
        peak_rss_mib=max(p.peak_rss_mib for p in procs),
        errors=sum(p.errors if p.rc == 0 else 1 for p in procs),
        fixed_cpu_s=fixed_cpu_s,
    )


def engine_cell(server: WindowServer, concurrency: int, rows: int, delay: float) -> Cell:
    spec = CellSpec("engine", concurrency, rows, delay, server.base_url, warmup=concurrency)
    r = measure_in_child(spec)
    return Cell(
        what="engine alone",
        concurrency=concurrency,
        processes=1,
        requests=r.requests,
        req_per_s=r.rps,
        share_of_limit=r.ratio,
        wall_s=None,
        cpu_s=r.cpu_s,
        peak_rss_mib=r.peak_rss_mib,
        errors=r.errors,
    )


def fixed_cost(work: Path, prompt: Path, server: WindowServer, src: Path | None) -> Proc:
    """A 1-row run: start-up, store, one call, analysis; what every run pays once."""
    one = write_dataset(work / "one.jsonl", 1)
    (proc,) = run_processes(Launch("1 row", [one], src), prompt, server, 1)
    return proc


def split(data_rows: int, parts: int, work: Path) -> list[Path]:
    """``parts`` data files of about ``data_rows / parts`` rows each."""
    sizes = [data_rows // parts + (1 if i < data_rows % parts else 0) for i in range(parts)]
    return [write_dataset(work / f"part-{i}.jsonl", n) for i, n in enumerate(sizes)]


# --------------------------------------------------------------------------- the run


@dataclass
class Options:
    rows: int = 5000
    delay: float = 0.1
    concurrency: Sequence[int] = (16, 64, 256)
    processes: int = 1
    baseline_src: Path | None = None
    cache: bool = False
    repeat: int = 1
    markdown: bool = False
    json_path: Path | None = None


def best(cells: list[Cell]) -> Cell:
    """The fastest of repeated cells (the others were slowed by neighbours on the machine)."""
    return max(cells, key=lambda c: c.req_per_s)


@dataclass
class Setup:
    """What every cell of a run shares."""

    options: Options
    server: WindowServer
    prompt: Path
    launches: list[Launch]  # the whole-process cells, in the order they run
    fixed: dict[Path | None, float]  # a 1-row run's CPU seconds, per checkout


def prepare(options: Options, work: Path, server: WindowServer) -> Setup:
    prompt = write_prompt(work / "prompt.md")
    data = [write_dataset(work / "data.jsonl", options.rows)]
    checkouts: dict[str, Path | None] = {}
    if options.baseline_src is not None:
        checkouts["assay run (before)"] = options.baseline_src
    checkouts["assay run"] = None
    launches = [Launch(what, data, src) for what, src in checkouts.items()]
    if options.cache:
        launches += [Launch(f"{w}, cache on", data, s, cache=True) for w, s in checkouts.items()]
    if options.processes > 1:
        parts = split(options.rows, options.processes, work)
        launches.append(Launch(f"assay run x {options.processes} processes", parts))
    return Setup(
        options=options,
        server=server,
        prompt=prompt,
        launches=launches,
        fixed={src: fixed_cost(work, prompt, server, src).cpu_s for src in checkouts.values()},
    )


def one_round(setup: Setup, c: int) -> dict[str, Cell]:
    """Every cell at concurrency ``c`` once: the engine alone, then each launch."""
    o = setup.options
    cells = {"engine alone": engine_cell(setup.server, c, o.rows, o.delay)}
    for launch in setup.launches:
        if c >= len(launch.data):
            fixed = setup.fixed[launch.src]
            cells[launch.what] = whole_cell(launch, setup.prompt, setup.server, c, o.delay, fixed)
    return cells


def measure_all(options: Options, work: Path, server: WindowServer) -> list[Cell]:
    setup = prepare(options, work, server)
    cells: list[Cell] = []
    for c in options.concurrency:
        rounds = [one_round(setup, c) for _ in range(max(1, options.repeat))]
        for kind in rounds[0]:
            cells.append(best([r[kind] for r in rounds]))
            print(_line(cells[-1]), file=sys.stderr, flush=True)
    return cells


def _line(c: Cell) -> str:
    return (
        f"  c={c.concurrency:<4} {c.what:<28} {c.req_per_s:7.1f} req/s ({c.share_of_limit:.0%} "
        f"of limit)  {c.cpu_ms_per_request:.3f} ms CPU/req  errors={c.errors}"
    )


COLUMNS = [
    "concurrency", "what", "processes", "requests", "req/s", "% of limit", "whole wall s",
    "% of limit (whole wall)", "CPU ms/req", "CPU ms/req beyond a 1-row run", "peak RSS MiB",
    "errors", "goals",
]  # fmt: skip


def verdict(c: Cell) -> str:
    if c.what == "engine alone":
        return "-"
    misses = []
    if c.share_of_limit < GOAL_SHARE:
        misses.append(f"{c.share_of_limit:.0%} < 90%")
    if c.cpu_ms_per_request > GOAL_CPU_MS:
        misses.append(f"{c.cpu_ms_per_request:.2f} > 1.0 ms")
    return "meets both" if not misses else "misses: " + ", ".join(misses)


def row(c: Cell, delay: float) -> list[str]:
    whole = "-"
    if c.wall_s:
        whole = f"{c.requests / c.wall_s * delay / c.concurrency:.0%}"
    return [
        str(c.concurrency),
        c.what,
        str(c.processes),
        f"{c.requests:,}",
        f"{c.req_per_s:,.0f}",
        f"{c.share_of_limit:.0%}",
        f"{c.wall_s:.2f}" if c.wall_s else "-",
        whole,
        f"{c.cpu_ms_per_request:.3f}",
        f"{c.marginal_cpu_ms:.3f}" if c.wall_s else "-",
        f"{c.peak_rss_mib:.0f}",
        str(c.errors),
        verdict(c),
    ]


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m perf.run_throughput")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", default="16,64,256")
    parser.add_argument("--processes", type=int, default=1, help="also N processes at once")
    parser.add_argument("--baseline-src", type=Path, default=None, help="another checkout's src")
    parser.add_argument("--cache", action="store_true", help="also a run with the cache on")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell, fastest kept")
    parser.add_argument("--quick", action="store_true", help="1,000 rows, concurrency 16,64")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.quick:
        args.rows = min(args.rows, 1000)
        concurrency = [c for c in concurrency if c <= 64] or concurrency
    return Options(
        rows=args.rows,
        delay=args.delay,
        concurrency=concurrency,
        processes=args.processes,
        baseline_src=args.baseline_src.resolve() if args.baseline_src else None,
        cache=args.cache,
        repeat=args.repeat,
        markdown=args.markdown,
        json_path=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
        return 0
    options = parse_args(argv)
    print(machine_line())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="assay-run-tp-") as tmp:
        server = WindowServer(options.delay)
        try:
            cells = measure_all(options, Path(tmp), server)
        finally:
            server.stop()
    title = (
        f"assay run as a whole process vs the engine alone, {options.rows:,} rows, "
        f"{options.delay:g} s per reply (limit = concurrency / delay)"
    )
    print_table(title, COLUMNS, [row(c, options.delay) for c in cells], markdown=options.markdown)
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1 min)")
    if options.json_path is not None:
        payload = {
            "machine": machine_line(),
            "rows": options.rows,
            "delay": options.delay,
            "cells": [
                {**asdict(c), "cpu_ms_per_request": c.cpu_ms_per_request,
                 "marginal_cpu_ms": c.marginal_cpu_ms}
                for c in cells
            ],
        }  # fmt: skip
        options.json_path.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(c.errors == 0 for c in cells) else 1


if __name__ == "__main__":
    raise SystemExit(main())
