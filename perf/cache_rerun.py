"""Re-running a finished ``assay run``: requests the server sees and wall time, cold vs cached.

    python -m perf.cache_rerun [--samples 10000] [--delay 0.01] [--concurrency 64] [--markdown]

A flat JSONL of ``--samples`` rows is generated in a temporary directory. The real CLI
(``assay run DATA PROMPT -m compat/m --base-url ... --metric label --store TMP --json``) runs
once against the scripted server (its own process, fixed ``--delay``), then the identical
command runs again. The baseline is the first (cold) run; the re-run should send 0 requests
(every call is answered from the response cache in the run store).
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

from perf.common import REPO_ROOT, ServerProcess, child_env, machine_line, print_table

ASSAY = REPO_ROOT / ".venv" / "bin" / "assay"
PROMPT = "Classify the sentiment of this review: {{input}}\nAnswer positive or negative.\n"


@dataclass
class CliRun:
    """One ``assay`` process: exit code, wall seconds, peak RSS and its JSON output."""

    rc: int
    wall_s: float
    peak_rss_mib: float
    cpu_s: float
    output: dict[str, object] | None
    stderr_tail: str


def write_dataset(path: Path, rows: int) -> Path:
    """A flat JSONL (``input``/``output``) of ``rows`` short labelled reviews."""
    words = ("warm", "funny", "dull", "slow", "sharp", "long", "bright", "flat")
    with path.open("w") as f:
        for i in range(rows):
            label = "positive" if i % 2 == 0 else "negative"
            text = f"Review {i}: a {words[i % 8]} and {words[(i * 7) % 8]} film, scene {i % 97}."
            f.write(json.dumps({"input": text, "output": label}) + "\n")
    return path


def write_prompt(path: Path) -> Path:
    path.write_text(PROMPT)
    return path


def run_cli(args: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> CliRun:
    """Run ``assay ARGS`` as a child; its own peak RSS and CPU come from ``wait4``."""
    out_path = cwd / f"stdout-{time.monotonic_ns()}.txt"
    err_path = cwd / f"stderr-{time.monotonic_ns()}.txt"
    full_env = dict(env or child_env())
    full_env.setdefault("OPENAI_COMPAT_API_KEY", "x")
    start = time.perf_counter()
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([str(ASSAY), *args], stdout=out, stderr=err, cwd=cwd, env=full_env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text()
    try:
        output = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        output = None
    return CliRun(
        rc=proc.returncode,
        wall_s=wall,
        peak_rss_mib=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        output=output,
        stderr_tail=err_path.read_text()[-800:],
    )


def cached_requests(output: dict[str, object] | None) -> int | None:
    if not output:
        return None
    variants = output.get("variants")
    if not isinstance(variants, list):
        return None
    return sum(int(v.get("cached_requests") or 0) for v in variants if isinstance(v, dict))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.cache_rerun")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="assay-cache-") as tmp,
        ServerProcess(args.delay, text="positive") as server,
    ):
        work = Path(tmp)
        data = write_dataset(work / "data.jsonl", args.samples)
        prompt = write_prompt(work / "prompt.md")
        command = [
            "run", str(data), str(prompt), "-m", "compat/m", "--base-url", server.base_url,
            "--metric", "label", "--store", str(work / "store"),
            "--concurrency", str(args.concurrency), "--json",
        ]  # fmt: skip
        for name in ("first run (baseline)", "identical re-run"):
            before = server.stats().requests
            run = run_cli(command, cwd=work)
            sent = server.stats().requests - before
            if run.rc != 0:
                print(f"{name}: exit {run.rc}\n{run.stderr_tail}")
            results[name] = {
                "rc": run.rc,
                "wall_s": run.wall_s,
                "cpu_s": run.cpu_s,
                "peak_rss_mib": run.peak_rss_mib,
                "server_requests": sent,
                "cached_requests": cached_requests(run.output),
                "status": (run.output or {}).get("status"),
            }
    base = results["first run (baseline)"]
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{args.samples:,}",
                str(r["status"]),
                f"{r['server_requests']:,}",
                f"{r['cached_requests']}",
                f"{r['wall_s']:.1f}",
                f"{r['wall_s'] / base['wall_s']:.2f}x",
                f"{r['cpu_s']:.1f}",
                f"{r['peak_rss_mib']:.0f}",
            ]
        )
    print_table(
        f"assay run, then the identical command again (delay {args.delay} s, "
        f"concurrency {args.concurrency})",
        [
            "run", "samples", "status", "server requests", "cached", "wall s",
            "wall vs first", "CPU s", "peak RSS MiB",
        ],
        rows,
        markdown=args.markdown,
    )  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "runs": results}, indent=2))
    return 0 if all(r["rc"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
