"""Assay vs aevyra-verdict on the same dataset, task model and judge, against one scripted server.

    python -m perf.peers [--samples 2000] [--delay 0.05] [--verdict-workers 10,32,64]
                          [--assay-concurrency 16,64] [--peers-venv /tmp/peers-venv] [--markdown]

The peer is installed in its own virtual environment (it pins other versions of the SDKs)::

    python -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install aevyra-verdict

One scripted OpenAI-compatible server (``python -m perf.peers serve``, its own process) answers
every request after ``--delay`` seconds: a judge prompt gets a verdict in the format the asking
tool demands (Assay: a ``VERDICT: 4`` line; aevyra-verdict: ``{"score": 4, ...}`` JSON), any other
prompt gets the label ``positive``. Both tools read the same OpenAI-messages JSONL (``messages``
+ ``ideal``), send the task model, then the judge, for every sample, with a rubric and the
``exact`` reference metric. Each tool runs at each of its concurrency settings; the table shows
every setting and the ratios use each tool's best. The baseline is aevyra-verdict at its best.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perf.common import (
    REPO_ROOT,
    ServerStats,
    child_env,
    machine_line,
    print_table,
    start_child,
    stop_child,
)

ASSAY = REPO_ROOT / ".venv" / "bin" / "assay"
RUBRIC = """\
# Sentiment answer quality

- Correct: the answer names the sentiment of the review (positive or negative).
- Terse: the answer is one word.
"""
LABEL = "positive"
ASSAY_VERDICT = "The answer is the correct single label.\nVERDICT: 4"
PEER_VERDICT = json.dumps({"score": 4, "reasoning": "The answer is the correct single label."})


# --------------------------------------------------------------------------- the server


def _all_text(request: Any) -> str:
    parts = []
    for message in request.messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def serve(argv: Sequence[str] | None = None) -> None:
    """Child process: print ``port N``, answer ``stats`` lines until stdin closes."""
    from assay.testing import ScriptedServer, reply

    parser = argparse.ArgumentParser(prog="python -m perf.peers serve")
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args(argv)
    kinds = {"task": 0, "assay-judge": 0, "peer-judge": 0}

    def handler(request: Any) -> Any:
        text = _all_text(request)
        if "VERDICT" in text:
            kinds["assay-judge"] += 1
            return reply(ASSAY_VERDICT, delay=args.delay)
        if '"score"' in text and "evaluator" in text:
            kinds["peer-judge"] += 1
            return reply(PEER_VERDICT, delay=args.delay)
        kinds["task"] += 1
        return reply(LABEL, delay=args.delay)

    with ScriptedServer(handler) as srv:
        print(f"port {srv.port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {"requests": srv.count, "cpu_s": time.process_time(), **kinds}
                print(json.dumps(stats), flush=True)


class JudgeServer:
    """``python -m perf.peers serve`` as a child; ``stats()`` counts requests by kind."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> JudgeServer:
        command = [sys.executable, "-m", "perf.peers", "serve", "--delay", str(self.delay)]
        self._proc, self.port = start_child(command, "judge server")
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def counts(self) -> dict[str, float]:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        data: dict[str, float] = json.loads(self._proc.stdout.readline())
        return data

    def stats(self) -> ServerStats:
        data = self.counts()
        return ServerStats(requests=int(data["requests"]), cpu_s=float(data["cpu_s"]))


# --------------------------------------------------------------------------- the runs


SYSTEM = "Classify the sentiment of the review. Answer with one word: positive or negative."


def write_messages_dataset(path: Path, rows: int, *, system: bool) -> Path:
    """OpenAI-messages JSONL with a reference (``ideal``).

    aevyra-verdict sends a row's messages as they are, so its copy carries the system prompt;
    Assay's copy has none, and Assay gets the same text as its prompt file (a prompt without
    slots is sent as the system message): both tools send identical messages.
    """
    words = ("warm", "funny", "dull", "slow", "sharp", "long", "bright", "flat")
    with path.open("w") as f:
        for i in range(rows):
            review = f"Review {i}: a {words[i % 8]} and {words[(i * 7) % 8]} film, scene {i % 97}."
            messages = [{"role": "user", "content": review}]
            if system:
                messages.insert(0, {"role": "system", "content": SYSTEM})
            f.write(json.dumps({"messages": messages, "ideal": LABEL}) + "\n")
    return path


def timed(command: Sequence[str], *, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    out_path = cwd / f"out-{time.monotonic_ns()}.txt"
    start = time.perf_counter()
    with out_path.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return {
        "rc": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "tail": out_path.read_text()[-1500:],
    }


def verdict_scores(path: Path, samples: int) -> tuple[float | None, float | None, int]:
    """(exact mean, judge mean, errors) from aevyra-verdict's ``-o`` JSON (``models`` summary)."""
    try:
        data = json.loads(path.read_text())
        model = next(iter(data["models"].values()))
    except (OSError, json.JSONDecodeError, KeyError, StopIteration, AttributeError):
        return None, None, -1

    def mean(prefix: str) -> float | None:
        for key, value in model.items():
            if key.startswith(prefix) and key.endswith("_mean") and value is not None:
                return float(value)
        return None

    errors = round(samples * (1 - float(model.get("success_rate", 0.0))))
    return mean("exact"), mean("llm_judge"), errors


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "serve":
        serve(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m perf.peers")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--verdict-workers", default="10,32,64")
    parser.add_argument("--assay-concurrency", default="16,64")
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/peers-venv"))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    verdict_bin = args.peers_venv / "bin" / "aevyra-verdict"
    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="assay-peers-") as tmp,
        JudgeServer(args.delay) as server,
    ):
        work = Path(tmp)
        peer_data = write_messages_dataset(work / "peer.jsonl", args.samples, system=True)
        data = write_messages_dataset(work / "data.jsonl", args.samples, system=False)
        prompt = work / "prompt.md"
        prompt.write_text(SYSTEM)
        rubric = work / "rubric.md"
        rubric.write_text(RUBRIC)
        settings: list[tuple[str, int]] = []
        if verdict_bin.exists():
            settings += [("aevyra-verdict", int(w)) for w in args.verdict_workers.split(",")]
        else:
            print(f"{verdict_bin} not found: aevyra-verdict skipped")
        settings += [("assay", int(c)) for c in args.assay_concurrency.split(",")]
        for tool, workers in settings:
            env = child_env()
            if tool == "aevyra-verdict":
                out = work / f"verdict-{workers}.json"
                # Its --judge takes no base URL; the openai provider's SDK reads these.
                env.update(OPENAI_API_KEY="x", OPENAI_BASE_URL=server.base_url)
                command = [
                    str(verdict_bin), "run", str(peer_data), "-m", "local/m",
                    "--base-url", server.base_url, "--judge", "openai/judge",
                    "--metric", "exact", "--max-workers", str(workers),
                    "--max-tokens", "256", "-o", str(out),
                ]  # fmt: skip
            else:
                out = work / f"assay-{workers}.json"
                env.update(OPENAI_COMPAT_API_KEY="x")
                command = [
                    str(ASSAY), "run", str(data), str(prompt), "-m", "compat/m",
                    "--base-url", server.base_url, "--judge", "compat/judge",
                    "--judge-criteria", str(rubric), "--judge-base-url", server.base_url,
                    "--metric", "exact", "--concurrency", str(workers),
                    "--store", str(work / f"store-{workers}"), "--no-cache", "-o", str(out),
                ]  # fmt: skip
            before = server.counts()
            result = timed(command, cwd=work, env=env)
            after = server.counts()
            sent = {k: int(after[k] - before[k]) for k in ("requests", "task")}
            sent["judge"] = int(
                after["assay-judge"]
                + after["peer-judge"]
                - before["assay-judge"]
                - before["peer-judge"]
            )
            if tool == "assay":
                exact, judge, n_errors = assay_scores(out)
            else:
                exact, judge, n_errors = verdict_scores(out, args.samples)
            if result["rc"] != 0:
                print(f"{tool} {workers}: exit {result['rc']}\n{result['tail']}")
            runs.append(
                {"tool": tool, "workers": workers, **result, "server": sent, "exact": exact,
                 "judge": judge, "errors": n_errors}
            )  # fmt: skip

    ok = [r for r in runs if r["rc"] == 0]
    best: dict[str, float] = {}
    for r in ok:
        best[r["tool"]] = min(best.get(r["tool"], float("inf")), r["wall_s"])
    baseline = best.get("aevyra-verdict") or best.get("assay") or 1.0
    rows = []
    for r in runs:
        reqs = r["server"]["requests"]
        rows.append(
            [
                r["tool"],
                str(r["workers"]),
                "ok" if r["rc"] == 0 else f"exit {r['rc']}",
                f"{r['wall_s']:.1f}",
                f"{reqs / r['wall_s']:.0f}" if r["wall_s"] else "-",
                f"{reqs / args.samples:.2f}",
                f"{r['server']['task']:,}/{r['server']['judge']:,}",
                f"{baseline / r['wall_s']:.2f}x",
                f"{r['cpu_s']:.1f}",
                f"{r['peak_rss_mib']:.0f}",
                "-" if r["exact"] is None else f"{r['exact']:.2f}",
                "-" if r["judge"] is None else f"{r['judge']:.2f}",
                str(r["errors"]),
            ]
        )
    print_table(
        f"{args.samples:,} samples, task + judge per sample, server delay {args.delay} s "
        "(speed = best aevyra-verdict wall / this wall)",
        [
            "tool", "workers", "exit", "wall s", "req/s", "server req/sample",
            "task/judge req", "speed vs verdict best", "CPU s", "peak RSS MiB", "exact",
            "judge", "errors",
        ],
        rows,
        markdown=args.markdown,
    )  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "runs": runs}, indent=2))
    return 0 if ok else 1


def assay_scores(path: Path) -> tuple[float | None, float | None, int]:
    """(exact mean, judge mean, errors) from Assay's ``-o`` JSON."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None, None, -1
    variant = data["variants"][0]
    metrics = variant.get("metrics") or {}

    def mean(name: str) -> float | None:
        for key, value in metrics.items():
            if key.startswith(name) and isinstance(value, dict):
                m = value.get("mean")
                return float(m) if isinstance(m, (int, float)) else None
        return None

    return mean("exact"), mean("judge"), int(variant.get("n_errors") or 0)


if __name__ == "__main__":
    raise SystemExit(main())
