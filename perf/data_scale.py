"""Memory and time of ``assay run`` and ``assay inspect`` as the dataset grows (10k vs 100k rows).

    python -m perf.data_scale [--rows 10000,100000] [--delay 0] [--concurrency 64]
                               [--tracemalloc] [--markdown] [--json PATH]

For each size a flat JSONL is generated in a temporary directory; the real CLI runs against the
scripted server (its own process, ``--delay`` s per reply, default 0) with ``--metric label``,
the cache off and a fresh ``--store``. Each ``assay`` child's peak RSS comes from ``wait4``; its
RSS is also polled from ``/proc`` every 0.1 s, so the table shows the RSS half-way through the
requests (what the dataset and the running engine hold) next to the peak (reached at the end,
when the summary reads every result back). The baseline is the smallest size. ``assay inspect``
(load only, no calls) runs on the same files.

``--tracemalloc`` adds a side run, in-process on the largest size, with ``tracemalloc`` on
(3 frames): the top allocation sites after ``load_dataset``, and after the analysis step's one
pass over the finished run's results (``run_analysis.analyse``: what
``run_analysis.tally`` keeps from the store's result rows); the analysis peak itself includes
the bootstrap's bounded numpy chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest.mock import patch

from perf.cache_rerun import ASSAY, write_dataset, write_prompt
from perf.common import ServerProcess, child_env, machine_line, print_table


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_polled(args: Sequence[str], *, cwd: Path) -> dict[str, Any]:
    """Run ``assay ARGS``; wall, CPU, peak RSS (wait4) and an RSS trace from /proc."""
    env = child_env()
    env["OPENAI_COMPAT_API_KEY"] = "x"
    out_path = cwd / f"stdout-{time.monotonic_ns()}.txt"
    trace: list[tuple[float, float]] = []
    start = time.perf_counter()
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [str(ASSAY), *args], stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env
        )
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                value = rss_mib(proc.pid)
                if value is not None:
                    trace.append((time.perf_counter() - start, value))
                stop.wait(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        stop.set()
        poller.join()
    wall = time.perf_counter() - start
    text = out_path.read_text()
    return {
        "rc": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "trace": trace,
        "stdout": text,
    }


def rss_at(trace: Sequence[tuple[float, float]], fraction: float, wall: float) -> float | None:
    """The polled RSS closest to ``fraction`` of the wall time."""
    if not trace:
        return None
    target = fraction * wall
    return min(trace, key=lambda point: abs(point[0] - target))[1]


def traced_side_run(data: Path, store: Path, run_id: str, top: int) -> dict[str, Any]:
    """tracemalloc over load_dataset, then over run_analysis.analyse of the finished run."""
    from assay.analysis import run_analysis
    from assay.data.datasets import load_dataset
    from assay.store.runstore import RunStore

    def top_stats(snapshot: tracemalloc.Snapshot) -> list[str]:
        snapshot = snapshot.filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<*>")]
        )
        lines = []
        for stat in snapshot.statistics("lineno")[:top]:
            frame = stat.traceback[0]
            where = frame.filename.split("site-packages/")[-1].split("/src/")[-1]
            lines.append(
                f"{stat.size / 2**20:8.1f} MiB {stat.count:>9,} blocks  {where}:{frame.lineno}"
            )
        return lines

    out: dict[str, Any] = {}
    tracemalloc.start(3)
    dataset = load_dataset(data)
    current, peak = tracemalloc.get_traced_memory()
    out["load"] = {"current_mib": current / 2**20, "peak_mib": peak / 2**20}
    out["load_top"] = top_stats(tracemalloc.take_snapshot())
    out["rows"] = len(dataset)
    del dataset
    tracemalloc.stop()

    store_obj = RunStore.open(store)
    tracemalloc.start(3)
    snapshots: list[tracemalloc.Snapshot] = []
    original_tally = run_analysis.tally

    def tally_and_snapshot(*args: Any) -> Any:
        value = original_tally(*args)
        snapshots.append(tracemalloc.take_snapshot())
        return value

    with patch.object(run_analysis, "tally", tally_and_snapshot):
        run_analysis.analyse(store_obj, run_id)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["analyse"] = {"current_mib": current / 2**20, "peak_mib": peak / 2**20}
    out["analyse_top"] = top_stats(snapshots[0]) if snapshots else []
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.data_scale")
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [int(r) for r in args.rows.split(",")]

    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results: list[dict[str, Any]] = []
    traced: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="assay-scale-") as tmp,
        ServerProcess(args.delay, text="positive") as server,
    ):
        work = Path(tmp)
        prompt = write_prompt(work / "prompt.md")
        for rows in sizes:
            data = write_dataset(work / f"data-{rows}.jsonl", rows)
            inspect = run_polled(["inspect", str(data), str(prompt)], cwd=work)
            store = work / f"store-{rows}"
            before = server.stats().requests
            run = run_polled(
                [
                    "run", str(data), str(prompt), "-m", "compat/m",
                    "--base-url", server.base_url, "--metric", "label", "--no-cache",
                    "--store", str(store), "--concurrency", str(args.concurrency), "--json",
                ],
                cwd=work,
            )  # fmt: skip
            sent = server.stats().requests - before
            try:
                report = json.loads(run["stdout"])
                run_id, status = report["run_id"], report["status"]
            except (json.JSONDecodeError, KeyError):
                run_id, status = "", f"exit {run['rc']}: {run['stdout'][-300:]}"
            results.append(
                {
                    "rows": rows,
                    "file_mib": data.stat().st_size / 2**20,
                    "status": status,
                    "server_requests": sent,
                    "run": {k: v for k, v in run.items() if k not in ("stdout", "trace")},
                    "run_rss_mid_mib": rss_at(run["trace"], 0.5, run["wall_s"]),
                    "inspect": {k: v for k, v in inspect.items() if k not in ("stdout", "trace")},
                }
            )
            print(f"{rows:,} rows: {status}, {run['wall_s']:.1f} s", flush=True)
            if args.tracemalloc and rows == max(sizes) and run_id:
                traced = traced_side_run(data, store, run_id, args.top)

    base = results[0]
    rows_out = []
    for r in results:
        run, ins = r["run"], r["inspect"]
        mid = r["run_rss_mid_mib"]
        rows_out.append(
            [
                f"{r['rows']:,}",
                f"{r['file_mib']:.1f}",
                str(r["status"]),
                f"{r['server_requests']:,}",
                f"{run['wall_s']:.1f}",
                f"{r['server_requests'] / run['wall_s']:.0f}",
                f"{run['wall_s'] / base['run']['wall_s']:.2f}x",
                "-" if mid is None else f"{mid:.0f}",
                f"{run['peak_rss_mib']:.0f}",
                f"{run['peak_rss_mib'] / base['run']['peak_rss_mib']:.2f}x",
                f"{ins['wall_s']:.2f}",
                f"{ins['peak_rss_mib']:.0f}",
                f"{ins['peak_rss_mib'] / base['inspect']['peak_rss_mib']:.2f}x",
            ]
        )
    print_table(
        f"assay run (delay {args.delay} s, concurrency {args.concurrency}, cache off) and "
        f"assay inspect; ratios vs {sizes[0]:,} rows",
        [
            "rows", "file MiB", "status", "requests", "run wall s", "req/s", "wall vs base",
            "RSS mid-run MiB", "run peak RSS MiB", "peak vs base", "inspect s",
            "inspect peak MiB", "inspect vs base",
        ],
        rows_out,
        markdown=args.markdown,
    )  # fmt: skip
    if traced:
        print(f"\ntracemalloc side run ({traced['rows']:,} rows):")
        for phase in ("load", "analyse"):
            m = traced[phase]
            print(
                f"\n{phase}: traced now {m['current_mib']:.1f} MiB, "
                f"peak {m['peak_mib']:.1f} MiB; top sites:"
            )
            for line in traced[f"{phase}_top"]:
                print("  " + line)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"sizes": results, "tracemalloc": traced}, indent=2))
    return 0 if all(r["run"]["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
