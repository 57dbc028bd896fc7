"""One run split into shards (``assay run --shard i/n``) and merged (``assay merge``), against
the same run unsharded.

    python -m perf.shards [--rows 20000] [--shards 2] [--delay 0.02] [--concurrency 64]
                          [--markdown] [--json PATH]

A flat JSONL of ``--rows`` rows; the scripted server in a process of its own (``--delay`` s per
reply). Three steps, each the real CLI in child processes: the whole run in one process (the
baseline); the n shards at once, one process and one store each (as n machines would, here
sharing this machine's cores); then ``assay merge`` of the n shard runs into a fresh store.
Each step's wall time, CPU (children's, from ``wait4``), peak RSS and server requests are
reported, and the merged report is compared with the unsharded one, field by field, leaving
out only what each run measures for itself (``TIMED``) and the run's id and origin.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf.cache_rerun import ASSAY, write_dataset, write_prompt
from perf.common import ServerProcess, child_env, machine_line, print_table

# Fields of the report that each run measures for itself or that name the run.
RUN_FIELDS = ("run_id", "merged_from", "pareto_quality_latency")
TIMED = ("latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "output_tokens_per_s")


@dataclass
class Step:
    name: str
    processes: int
    rc: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float  # the largest of its processes
    requests: int
    outputs: list[dict[str, Any]]


def run_all(
    commands: Sequence[Sequence[str]], cwd: Path
) -> tuple[int, float, float, float, list[dict[str, Any]]]:
    """Start every ``assay`` command at once and wait for all: exit code (worst), wall, CPU
    (summed), peak RSS (largest) and each one's JSON output."""
    env = {**child_env(), "OPENAI_COMPAT_API_KEY": "x"}
    outs = [cwd / f"out-{time.monotonic_ns()}-{i}.json" for i in range(len(commands))]
    start = time.perf_counter()
    procs = []
    for command, out in zip(commands, outs, strict=True):
        with out.open("w") as f:
            procs.append(subprocess.Popen([str(ASSAY), *command], stdout=f, cwd=cwd, env=env))
    codes, cpu, rss = [], 0.0, 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        codes.append(os.waitstatus_to_exitcode(status))
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, usage.ru_maxrss / 1024)
    wall = time.perf_counter() - start
    outputs = [json.loads(o.read_text() or "{}") for o in outs]
    return max(codes, key=abs), wall, cpu, rss, outputs


def step(name: str, commands: Sequence[Sequence[str]], server: ServerProcess, cwd: Path) -> Step:
    before = server.stats().requests
    rc, wall, cpu, rss, outputs = run_all(commands, cwd)
    return Step(name, len(commands), rc, wall, cpu, rss, server.stats().requests - before, outputs)


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in report.items() if k not in RUN_FIELDS}
    kept["variants"] = [
        {k: v for k, v in variant.items() if k not in TIMED}
        for variant in report.get("variants", [])
    ]
    return kept


def measure(rows: int, shards: int, delay: float, concurrency: int) -> tuple[list[Step], bool]:
    with (
        tempfile.TemporaryDirectory(prefix="assay-shards-") as tmp,
        ServerProcess(delay, text="positive") as server,
    ):
        work = Path(tmp)
        data, prompt = write_dataset(work / "data.jsonl", rows), write_prompt(work / "p.md")
        base = [
            "run", str(data), str(prompt), "-m", "compat/m", "--base-url", server.base_url,
            "--metric", "label", "--concurrency", str(concurrency), "--no-cache", "--json",
        ]  # fmt: skip
        stores = [work / f"machine{i}" for i in range(1, shards + 1)]
        whole = step(
            "whole run, 1 process", [[*base, "--store", str(work / "whole")]], server, work
        )
        split = step(
            f"{shards} shards at once, 1 process and store each",
            [
                [*base, "--store", str(s), "--shard", f"{i}/{shards}"]
                for i, s in enumerate(stores, 1)
            ],
            server,
            work,
        )
        sources = [arg for s in stores for arg in ("--from", str(s))]
        ids = [o.get("run_id", "") for o in split.outputs]
        merge = step(
            f"assay merge of the {shards} shard runs",
            [["merge", *ids, *sources, "--store", str(work / "merged"), "--json"]],
            server,
            work,
        )
    equal = bool(merge.outputs[0]) and comparable(merge.outputs[0]) == comparable(whole.outputs[0])
    return [whole, split, merge], equal


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.shards")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    steps, equal = measure(args.rows, args.shards, args.delay, args.concurrency)
    base = steps[0].wall_s
    table = [
        [
            s.name, str(s.processes), str(s.rc), f"{s.requests:,}", f"{s.wall_s:.1f}",
            f"{s.wall_s / base:.2f}x", f"{s.cpu_s:.1f}", f"{s.peak_rss_mib:.0f}",
        ]
        for s in steps
    ]  # fmt: skip
    print_table(
        f"{args.rows:,} rows, 1 model, delay {args.delay} s, concurrency {args.concurrency} "
        "per process",
        ["step", "processes", "exit", "server requests", "wall s", "wall vs whole", "CPU s",
         "peak RSS MiB"],
        table,
        markdown=args.markdown,
    )  # fmt: skip
    print(f"merged report equals the unsharded one (but {', '.join(RUN_FIELDS + TIMED)}): {equal}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        result = {"rows": args.rows, "shards": args.shards, "merged_equals_whole": equal}
        result["steps"] = [{k: v for k, v in vars(s).items() if k != "outputs"} for s in steps]
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if equal and all(s.rc == 0 for s in steps) else 1


if __name__ == "__main__":
    raise SystemExit(main())
