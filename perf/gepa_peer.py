"""gepa's side of ``perf.optimizer_peers``: run by the peers venv's python, not assay's.

    /tmp/peers-venv/bin/python perf/gepa_peer.py --opt opt.jsonl --prompt prompt.md \\
        --base-url http://127.0.0.1:11434/v1 --max-calls 150 --seed 0 --out best.md \\
        --result result.json

Stdlib and gepa only (``/tmp/peers-venv/bin/pip install gepa``; written against gepa 0.1.4).
The optimizer's rows (``text``/``label``) become gepa's default-adapter items (``input``,
``answer``, ``additional_context``), split in half: train (reflection minibatches) and val
(gepa's Pareto/selection set); gepa has no split of its own and reuses train as val if given
none. The seed candidate is the prompt, which gepa's ``DefaultAdapter`` sends as the system
message before the row as the user message, as ``assay run`` does with a plain prompt.

Models: litellm is not in the peers venv, so both are plain callables over the benchmark's
OpenAI-compatible server: ``smollm2`` (task) and ``reasoner`` (reflection), temperature 0 and the
seed, as Assay sends them; the server caps the reply lengths. Task requests go 4 at a time.

Metric: a custom evaluator equal to Assay's ``label`` (the first label word in the reply, whole
word, case-insensitive; 1.0 if it is the expected one), not gepa's default "answer is contained
in the reply" check.

Budget: gepa's ``max_metric_calls`` counts task evaluations only and is checked between
iterations, so one iteration can overrun it. Assay's ``--max-calls`` counts task and reasoning
calls. So gepa gets ``max_metric_calls=--max-calls`` plus a stopper that counts both kinds and
stops before an iteration that could overrun the budget (worst case of one iteration: the
parent's minibatch, one reflection, the child's minibatch and a full val evaluation).

Writes the best prompt to ``--out`` and a JSON summary to ``--result``: gepa's own val scores
of the seed and of the best candidate, its metric-call count and the calls made, by role.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MINIBATCH = 3  # gepa's default reflection_minibatch_size


class Client:
    """Chat completions against the benchmark server, counting the calls it sends, by role."""

    def __init__(self, base_url: str, seed: int, workers: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.seed = seed
        self.workers = workers
        self.calls = {"task": 0, "reasoning": 0}
        self._lock = threading.Lock()

    def chat(self, model: str, messages: list[dict[str, Any]]) -> str:
        role = "reasoning" if model == "reasoner" else "task"
        with self._lock:
            self.calls[role] += 1
        body = {"model": model, "messages": messages, "temperature": 0.0, "seed": self.seed}
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
        )
        with urllib.request.urlopen(request, timeout=900) as response:
            reply = json.loads(response.read())
        return str(reply["choices"][0]["message"].get("content") or "")

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def task(self, messages: list[dict[str, Any]]) -> str:
        return self.chat("smollm2", list(messages))

    def batch_complete(self, messages_list: list[Any], max_workers: int = 4, **_: Any) -> list[str]:
        with ThreadPoolExecutor(min(max_workers, self.workers)) as pool:
            return [reply.strip() for reply in pool.map(self.task, messages_list)]

    def reflect(self, prompt: str | list[dict[str, Any]]) -> str:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return self.chat("reasoner", messages)


def label_evaluator(labels: set[str]) -> Any:
    """Assay's ``label`` metric as a gepa evaluator, with feedback for the reflection."""
    from gepa.adapters.default_adapter.default_adapter import EvaluationResult

    ordered = sorted(labels, key=lambda label: (-len(label), label))
    words = (r"(?<!\w)" + r"\s+".join(map(re.escape, w.split())) + r"(?!\w)" for w in ordered)
    pattern = re.compile("|".join(words), re.IGNORECASE)

    def evaluate(data: dict[str, Any], response: str) -> Any:
        match = pattern.search(response or "")
        found = " ".join(match.group(0).split()) if match else None
        expected = data["answer"]
        if found is not None and found.casefold() == expected.casefold():
            return EvaluationResult(1.0, f"Correct: the first label in the response is {found!r}.")
        said = f"the first label in the response is {found!r}" if found else "it has no label"
        return EvaluationResult(
            0.0, f"Incorrect: {said}; the correct answer is {expected!r}. Start with the label."
        )

    return evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gepa_peer.py")
    parser.add_argument("--opt", type=Path, required=True)
    parser.add_argument("--prompt", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--max-calls", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)

    import gepa
    from gepa.adapters.default_adapter.default_adapter import DefaultAdapter

    rows = [json.loads(line) for line in args.opt.read_text().splitlines() if line.strip()]
    items = [{"input": r["text"], "answer": r["label"], "additional_context": {}} for r in rows]
    cut = len(items) - len(items) // 2
    train, val = items[:cut], items[cut:] or items[:cut]
    client = Client(args.base_url, args.seed, args.workers)
    adapter = DefaultAdapter(
        model=client.task, evaluator=label_evaluator({r["label"] for r in rows})
    )
    # gepa 0.1.4 batches task requests only through litellm's LM (``adapter._lm``); with a plain
    # callable it sends them one at a time. Give it the client's thread-pool ``batch_complete``.
    adapter._lm = client
    per_iteration = 2 * MINIBATCH + 1 + len(val)

    def over_budget(state: Any) -> bool:
        return bool(client.total() + per_iteration > args.max_calls)

    # Stripped, as Assay loads a prompt file: a trailing newline changes SmolLM2's replies.
    seed_prompt = args.prompt.read_text().replace("\r\n", "\n").strip()
    result = gepa.optimize(
        seed_candidate={"system_prompt": seed_prompt},
        trainset=train,
        valset=val,
        adapter=adapter,
        reflection_lm=client.reflect,
        reflection_minibatch_size=MINIBATCH,
        max_metric_calls=args.max_calls,
        stop_callbacks=[over_budget],
        seed=args.seed,
    )
    best = result.candidates[result.best_idx]["system_prompt"]
    args.out.write_text(best)
    summary = {
        "baseline_val": result.val_aggregate_scores[0],
        "final_val": result.val_aggregate_scores[result.best_idx],
        "candidates": result.num_candidates,
        "metric_calls": result.total_metric_calls,
        "calls": dict(client.calls),
        "train": len(train),
        "val": len(val),
        "best_prompt": best,
    }
    args.result.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "best_prompt"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
