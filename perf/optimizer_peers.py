"""Prompt optimizers on the same data, model, split and call budget: Assay, aevyra-reflex, gepa.

    python -m perf.optimizer_peers [--rows 60] [--seeds 0,1,2] [--max-calls 150]
        [--reflex-iterations 3] [--reflex-batch 8] [--tools assay,reflex,gepa]
        [--port 11434] [--peers-venv /tmp/peers-venv] [--markdown] [--json PATH]

The peers live in their own venv: ``/tmp/peers-venv/bin/pip install aevyra-reflex gepa``.

The embedded model (SmolLM2-135M-Instruct, the GGUF that ``local/smollm2`` runs) is served once,
by this module's ``serve`` child (llama.cpp in-process through ``xllamacpp``, as Assay's
``LocalProvider`` runs it), on an OpenAI-compatible port, 127.0.0.1:11434 by default (where
aevyra-reflex's ``local/`` provider looks). The same server is the task model (model name
``smollm2``) and the reasoning model (model name ``reasoner``) for every tool, and it counts the
calls it gets, by role. It caps every task reply at ``--max-tokens`` (8) and every reasoning reply
at ``--reasoning-max-tokens`` (128) whatever a tool asks, so no tool pays for longer replies
than another (aevyra-reflex asks for 1,024 and 4,096 tokens and has no flag to lower them).

Per seed: 60 demo rows are shuffled with the seed; 2/3 (40) go to the optimizers, 1/3 (20)
are held out. Each tool splits its 40 rows as it does by default (gepa, which has no split of
its own, gets half as train and half as val). Both the baseline prompt and each tool's final
prompt are then scored by the same ``assay run --metric label`` on the same 20 held-out rows
(the ``held-out`` columns), so the scores are comparable; each tool's own reported
baseline/final (on its own test or val split and metric) is shown too. The held-out scoring
is not in the ``calls`` columns: those are the server's counts around the optimizer alone.

Assay gets ``--max-calls``. aevyra-reflex has no call cap, so it gets ``--reflex-iterations``
rounds of ``--reflex-batch`` rows, and the calls it actually made are counted by the server.
gepa (0.1.4) is driven through its Python API by ``perf/gepa_peer.py``, run by the peers
venv's python: its default adapter with the task and reasoning models as callables over the
same server, Assay's ``label`` metric as its evaluator, ``max_metric_calls=--max-calls`` and a
stopper that also counts reasoning calls, as Assay's budget does (see that file).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from perf.common import REPO_ROOT, child_env, machine_line, print_table, start_child, stop_child

ASSAY = REPO_ROOT / ".venv" / "bin" / "assay"
GEPA_PEER = REPO_ROOT / "perf" / "gepa_peer.py"
DEMO = REPO_ROOT / "src" / "assay" / "data" / "demo"
TOOLS = ("assay", "reflex", "gepa")
KEYS = ("messages", "temperature", "max_tokens", "top_p", "seed", "stop")


# --------------------------------------------------------------------------- model server


def serve(argv: Sequence[str] | None = None) -> None:
    """The embedded model over HTTP on a fixed port, counting calls by role."""
    from assay.providers import resolve_model
    from assay.providers.local import _start_server
    from assay.providers.specs import local_model_path

    parser = argparse.ArgumentParser(prog="python -m perf.optimizer_peers serve")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--reasoning-max-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    model = _start_server(str(local_model_path(resolve_model("local/smollm2"))), args.parallel)
    counts = {"task": 0, "reasoning": 0, "errors": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/stats"):
                with lock:
                    self._send(200, dict(counts))
            elif self.path.rstrip("/").endswith("/models"):
                ids = ["smollm2", "reasoner"]
                self._send(200, {"object": "list", "data": [{"id": i} for i in ids]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            role = "reasoning" if str(body.get("model", "")).endswith("reasoner") else "task"
            cap = args.reasoning_max_tokens if role == "reasoning" else args.max_tokens
            request = {k: body[k] for k in KEYS if body.get(k) is not None}
            request["max_tokens"] = min(int(body.get("max_tokens") or cap), cap)
            with lock:
                counts[role] += 1
            reply = model.handle_chat_completions(request)
            if not isinstance(reply, dict) or "error" in reply:
                with lock:
                    counts["errors"] += 1
                self._send(500, {"error": {"message": str(reply)[:500]}})
                return
            reply.setdefault("model", body.get("model", "smollm2"))
            self._send(200, reply)

    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True
    print(f"port {args.port}", flush=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    for _line in sys.stdin:
        pass
    httpd.shutdown()


class ModelServer:
    def __init__(self, port: int, max_tokens: int, reasoning_max_tokens: int) -> None:
        self.port = port
        self.command = [
            sys.executable, "-m", "perf.optimizer_peers", "serve", "--port", str(port),
            "--max-tokens", str(max_tokens), "--reasoning-max-tokens", str(reasoning_max_tokens),
        ]  # fmt: skip
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ModelServer:
        self._proc, _ = start_child(self.command, "model server")
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, timeout_s=20)  # llama.cpp takes a while to unload

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def counts(self) -> dict[str, int]:
        with urlopen(f"{self.base_url}/stats", timeout=10) as response:
            data: dict[str, int] = json.loads(response.read())
        return data


# --------------------------------------------------------------------------- runs


def run_command(command: Sequence[str], *, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    out_path = cwd / f"out-{time.monotonic_ns()}.txt"
    start = time.perf_counter()
    with out_path.open("w") as out:
        try:
            rc = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        except OSError as exc:  # e.g. the peers venv is missing: the row says so, others run
            print(f"cannot run {command[0]}: {exc}", file=out)
            rc = 127
    return {"rc": rc, "wall_s": time.perf_counter() - start, "out": out_path.read_text()}


def last_json(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    while start != -1:
        try:
            value = json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.find("\n{", start + 1)
            start = start + 1 if start != -1 else -1
            continue
        return value if isinstance(value, dict) else None
    return None


def held_out_score(
    test: Path, prompt: Path, server: ModelServer, work: Path, env: dict[str, str]
) -> float | None:
    """The label score of ``prompt`` on the held-out rows, by ``assay run``."""
    result = run_command(
        [
            str(ASSAY), "run", str(test), str(prompt), "-m", "compat/smollm2",
            "--base-url", server.base_url, "--metric", "label", "--max-tokens", "8",
            "--input-field", "text", "--output-field", "label", "--concurrency", "4",
            "--store", str(work / "eval-store"), "--no-cache", "--json",
        ],
        cwd=work,
        env=env,
    )  # fmt: skip
    report = last_json(result["out"])
    if result["rc"] != 0 or not report:
        print(f"held-out eval failed: {result['out'][-800:]}")
        return None
    return float(report["variants"][0]["score"]["mean"])


def run_assay(
    opt: Path, prompt: Path, server: ModelServer, work: Path, env: dict[str, str], args: Any,
    seed: int,
) -> dict[str, Any]:  # fmt: skip
    best = work / "assay-best.md"
    result = run_command(
        [
            str(ASSAY), "optimize", str(opt), str(prompt), "-m", "compat/smollm2",
            "--base-url", server.base_url, "--reasoning-model", "compat/reasoner",
            "--reasoning-base-url", server.base_url, "--metric", "label",
            "--input-field", "text", "--output-field", "label",
            "--max-calls", str(args.max_calls), "--max-tokens", "8",
            "--reasoning-max-tokens", str(args.reasoning_max_tokens), "--seed", str(seed),
            "--concurrency", "4", "--store", str(work / "assay-store"), "--no-cache",
            "-o", str(best), "--json",
        ],
        cwd=work,
        env=env,
    )  # fmt: skip
    report = last_json(result["out"]) or {}
    own_base = own_final = None
    try:
        own_base = float(report["baseline"]["test"]["mean"])
        own_final = float(report["final"]["test"]["mean"])
    except (KeyError, TypeError, ValueError):
        own_base, own_final = _find_scores(report)
    return {
        **{k: v for k, v in result.items() if k != "out"},
        "tail": result["out"][-1200:],
        "best": best if best.exists() else None,
        "own_baseline": own_base,
        "own_final": own_final,
        "own_calls": (report.get("spend") or {}).get("calls"),
        "iterations": report.get("iterations"),
        "accepted": report.get("accepted"),
    }


def _find_scores(report: dict[str, Any]) -> tuple[float | None, float | None]:
    """Best effort: the optimize JSON's baseline/final test means, wherever they sit."""

    def mean(value: Any) -> float | None:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, dict):
            for key in ("mean", "score", "test_score", "test"):
                if key in value:
                    return mean(value[key])
        return None

    return mean(report.get("baseline")), mean(report.get("final") or report.get("best"))


def run_reflex(
    opt_msgs: Path, prompt: Path, server: ModelServer, work: Path, env: dict[str, str],
    args: Any,
) -> dict[str, Any]:  # fmt: skip
    best = work / "reflex-best.md"
    results_json = work / "reflex-results.json"
    reflex = args.peers_venv / "bin" / "aevyra-reflex"
    result = run_command(
        [
            str(reflex), "optimize", str(opt_msgs), str(prompt), "-m", "local/smollm2",
            "--reasoning-model", "openai/reasoner", "--reasoning-base-url", server.base_url,
            "--reasoning-api-key", "x", "--metric", "exact", "--strategy", "iterative",
            "--max-iterations", str(args.reflex_iterations),
            "--batch-size", str(args.reflex_batch), "--threshold", "0.99",
            "--max-workers", "4", "--run-dir", str(work / ".reflex"),
            "-o", str(best), "--results-json", str(results_json),
        ],
        cwd=work,
        env={**env, "OPENAI_API_KEY": "x"},
    )  # fmt: skip
    own_base = own_final = None
    try:
        data = json.loads(results_json.read_text())
        own_base = _num(data, ("baseline_score", "baseline", "initial_score"))
        own_final = _num(data, ("final_score", "best_score", "final"))
    except (OSError, json.JSONDecodeError):
        pass
    return {
        **{k: v for k, v in result.items() if k != "out"},
        "tail": result["out"][-1200:],
        "best": best if best.exists() and best.read_text().strip() else None,
        "own_baseline": own_base,
        "own_final": own_final,
    }


def run_gepa(
    opt: Path, prompt: Path, server: ModelServer, work: Path, env: dict[str, str], args: Any,
    seed: int,
) -> dict[str, Any]:  # fmt: skip
    """gepa through its Python API, in the peers venv (``perf/gepa_peer.py``)."""
    best = work / "gepa-best.md"
    summary_path = work / "gepa-result.json"
    result = run_command(
        [
            str(args.peers_venv / "bin" / "python"), str(GEPA_PEER), "--opt", str(opt),
            "--prompt", str(prompt), "--base-url", server.base_url,
            "--max-calls", str(args.max_calls), "--seed", str(seed), "--workers", "4",
            "--out", str(best), "--result", str(summary_path),
        ],
        cwd=work,
        env=env,
    )  # fmt: skip
    try:
        summary: dict[str, Any] = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError):
        summary = {}
    calls = summary.get("calls") or {}
    return {
        **{k: v for k, v in result.items() if k != "out"},
        "tail": result["out"][-1200:],
        "best": best if result["rc"] == 0 and best.exists() and best.read_text().strip() else None,
        "own_baseline": summary.get("baseline_val"),
        "own_final": summary.get("final_val"),
        "own_calls": sum(calls.values()) if calls else None,
        "metric_calls": summary.get("metric_calls"),
        "candidates": summary.get("candidates"),
    }


def _num(data: Any, keys: Sequence[str]) -> float | None:
    if not isinstance(data, dict):
        return None
    for key in keys:
        value = data.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, dict):
            inner = _num(value, ("mean_score", "score", "mean"))
            if inner is not None:
                return inner
    return None


def changed(best: str | None, original: str) -> str:
    """Whether the final prompt differs from the original (whitespace aside)."""
    if best is None:
        return "no prompt"
    return "no" if " ".join(best.split()) == " ".join(original.split()) else "yes"


def write_split(rows: list[dict[str, Any]], work: Path) -> tuple[Path, Path, Path]:
    cut = round(len(rows) * 2 / 3)
    opt, test = rows[:cut], rows[cut:]
    opt_path, msgs_path, test_path = (
        work / "opt.jsonl",
        work / "opt_msgs.jsonl",
        work / "test.jsonl",
    )
    opt_path.write_text("".join(json.dumps(r) + "\n" for r in opt))
    test_path.write_text("".join(json.dumps(r) + "\n" for r in test))
    msgs = [
        {"messages": [{"role": "user", "content": r["text"]}], "ideal": r["label"]} for r in opt
    ]
    msgs_path.write_text("".join(json.dumps(r) + "\n" for r in msgs))
    return opt_path, msgs_path, test_path


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "serve":
        serve(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m perf.optimizer_peers")
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-calls", type=int, default=150)
    parser.add_argument("--reasoning-max-tokens", type=int, default=128)
    parser.add_argument("--reflex-iterations", type=int, default=3)
    parser.add_argument("--reflex-batch", type=int, default=8)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/peers-venv"))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tools {unknown}; known: {', '.join(TOOLS)}")

    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    all_rows = [json.loads(line) for line in (DEMO / "sentiment.jsonl").read_text().splitlines()]
    prompt_src = DEMO / "sentiment_prompt.md"
    env = child_env()
    env["OPENAI_COMPAT_API_KEY"] = "x"
    records: list[dict[str, Any]] = []
    with ModelServer(args.port, 8, args.reasoning_max_tokens) as server:
        for seed in [int(s) for s in args.seeds.split(",")]:
            rows = list(all_rows)
            random.Random(seed).shuffle(rows)
            with tempfile.TemporaryDirectory(prefix="assay-optpeers-") as tmp:
                work = Path(tmp)
                prompt = work / "prompt.md"
                prompt.write_text(prompt_src.read_text())
                opt, opt_msgs, test = write_split(rows[: args.rows], work)
                baseline = held_out_score(test, prompt, server, work, env)
                for tool in tools:
                    before = server.counts()
                    if tool == "assay":
                        result = run_assay(opt, prompt, server, work, env, args, seed)
                    elif tool == "gepa":
                        result = run_gepa(opt, prompt, server, work, env, args, seed)
                    else:
                        result = run_reflex(opt_msgs, prompt, server, work, env, args)
                    after = server.counts()
                    calls = {k: after[k] - before[k] for k in ("task", "reasoning", "errors")}
                    final = (
                        held_out_score(test, result["best"], server, work, env)
                        if result["best"]
                        else None
                    )
                    if result["rc"] != 0:
                        print(f"{tool} seed {seed}: exit {result['rc']}\n{result['tail']}")
                    best_text = result["best"].read_text() if result["best"] else None
                    records.append(
                        {"seed": seed, "tool": tool, "baseline_heldout": baseline,
                         "final_heldout": final, "calls": calls, "best_prompt": best_text,
                         **{k: v for k, v in result.items() if k != "best"}}
                    )  # fmt: skip
                    print(
                        f"seed {seed} {tool}: rc {result['rc']}, {result['wall_s']:.0f} s, "
                        f"calls {calls}, held-out {baseline} -> {final}",
                        flush=True,
                    )

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    table = []
    for r in records:
        total = r["calls"]["task"] + r["calls"]["reasoning"]
        gain = (
            None
            if r["final_heldout"] is None or r["baseline_heldout"] is None
            else r["final_heldout"] - r["baseline_heldout"]
        )
        table.append(
            [
                str(r["seed"]), r["tool"], "ok" if r["rc"] == 0 else f"exit {r['rc']}",
                fmt(r["baseline_heldout"]), fmt(r["final_heldout"]),
                "-" if gain is None else f"{gain:+.3f}",
                fmt(r["own_baseline"]), fmt(r["own_final"]),
                f"{total}", f"{r['calls']['task']}/{r['calls']['reasoning']}",
                f"{total / args.max_calls:.2f}x", f"{r['wall_s']:.0f}",
                changed(r["best_prompt"], prompt_src.read_text()),
            ]
        )  # fmt: skip
    print_table(
        f"{args.rows} demo rows (2/3 to optimize, 1/3 held out), SmolLM2-135M as task and "
        "reasoner, "
        f"budget {args.max_calls} calls",
        [
            "seed", "tool", "exit", "held-out baseline", "held-out final", "gain",
            "own baseline", "own final", "calls", "task/reasoning", "calls vs budget",
            "wall s", "prompt changed",
        ],
        table,
        markdown=args.markdown,
    )  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
