"""Each optimization strategy against the baseline prompt, at the same call budget.

    python -m perf.strategies [--rows 120] [--max-calls 250] [--max-iterations 4]
                               [--strategies screen,iterative,pareto,structural,fewshot,auto]
                               [--json PATH] [--markdown]

The task and the reasoning model are both the embedded SmolLM2-135M (no network, no key), on
the first ``--rows`` rows of the demo sentiment data with the demo prompt and the label metric.
Every strategy runs in its own run store with its own empty cache, so no strategy is served
another's calls, and every run gets the same ``--max-calls`` (task and reasoning calls
together; the loop stops while the budget still covers the final test). ``duel`` is left out:
it needs a judge, and the embedded model as a pairwise judge would be slow and meaningless.

The table gives the baseline and the best prompt on the held-out test split (the same rows for
every strategy: one data file, one split seed), the paired gain with its 95% CI and p-value,
and the calls each strategy actually made.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from perf.common import machine_line, print_table

# Registry order (``STRATEGY_TYPES``), ``duel`` left out; ``auto`` last.
STRATEGIES = ("screen", "iterative", "pareto", "structural", "fewshot", "auto")


@dataclass(frozen=True)
class Row:
    strategy: str
    baseline_test: float | None
    final_test: float | None
    gain_low: float | None
    gain_high: float | None
    p_value: float | None
    n_test: int
    best_val: float | None
    accepted: int
    iterations: int
    calls: int
    reasoning_calls: int
    wall_s: float
    stopped: str


def write_rows(path: Path, rows: int) -> Path:
    from assay.data import demo_path

    lines = demo_path("sentiment.jsonl").read_text(encoding="utf-8").splitlines()[:rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config(data: Path, strategy: str, args: argparse.Namespace) -> object:
    from assay.data import demo_path
    from assay.engine.engine import Budget, EngineConfig
    from assay.evaluation.config import ScoringConfig
    from assay.optimizer.config import OptimizeConfig, StopRules
    from assay.providers.specs import resolve_model
    from assay.records import GenerationParams

    return OptimizeConfig(
        data=str(data),
        prompt=str(demo_path("sentiment_prompt.md")),
        model=resolve_model("local/smollm2"),
        scoring=ScoringConfig(metrics=["label"]),
        params=GenerationParams(max_tokens=args.max_tokens, temperature=0.0, seed=0),
        reasoning_max_tokens=args.reasoning_max_tokens,
        strategy=strategy,
        batch_size=args.batch_size,
        stop=StopRules(max_iterations=args.max_iterations, patience=args.max_iterations),
        engine=EngineConfig(budget=Budget(max_calls=args.max_calls)),
    )


def run_one(data: Path, strategy: str, args: argparse.Namespace) -> Row:
    from assay.jobs import OptimizeJob, Session
    from assay.optimizer.config import OptimizeConfig

    cfg = config(data, strategy, args)
    assert isinstance(cfg, OptimizeConfig)
    with tempfile.TemporaryDirectory() as store_dir:
        job = OptimizeJob.prepare(Session.open(store_dir), cfg)
        started = time.perf_counter()
        result = job.execute()
        wall = time.perf_counter() - started
    reasoning = sum(len(r.reasoner_replies) for r in result.trajectory)
    reasoning += sum(1 for r in result.trajectory if r.strategy_state.get("chooser_reply"))
    return Row(
        strategy=strategy,
        baseline_test=result.baseline.test.mean,
        final_test=result.final.test.mean,
        gain_low=result.gain.ci_low,
        gain_high=result.gain.ci_high,
        p_value=result.gain.p_value,
        n_test=result.final.test.n_scored,
        best_val=result.final.val.mean,
        accepted=result.accepted,
        iterations=result.iterations,
        calls=result.spend.calls,
        reasoning_calls=reasoning,
        wall_s=wall,
        stopped=result.stopped_reason or "",
    )


def _f(value: float | None, fmt: str = "{:.3f}") -> str:
    return "–" if value is None else fmt.format(value)


def table(rows: Sequence[Row], markdown: bool) -> None:
    columns = [
        "strategy",
        "test before",
        "test after",
        "gain 95% CI",
        "p",
        "val best",
        "accepted/iters",
        "calls (reasoning)",
        "wall s",
        "stopped",
    ]
    cells = [
        [
            r.strategy,
            _f(r.baseline_test),
            _f(r.final_test),
            f"[{_f(r.gain_low, '{:+.3f}')}, {_f(r.gain_high, '{:+.3f}')}]",
            _f(r.p_value, "{:.3g}"),
            _f(r.best_val),
            f"{r.accepted}/{r.iterations}",
            f"{r.calls} ({r.reasoning_calls})",
            f"{r.wall_s:.0f}",
            r.stopped[:48],
        ]
        for r in rows
    ]
    print_table(
        "Strategies at the same call budget (test split)", columns, cells, markdown=markdown
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m perf.strategies")
    parser.add_argument("--rows", type=int, default=120, help="demo rows used (first N)")
    parser.add_argument("--max-calls", type=int, default=250, help="call budget per strategy")
    parser.add_argument("--max-iterations", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=8, help="task output cap")
    parser.add_argument("--reasoning-max-tokens", type=int, default=160)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_rows(Path(tmp) / "sentiment.jsonl", args.rows)
        for name in names:
            row = run_one(data, name, args)
            print(
                f"{name}: {row.final_test} after {row.calls} calls, {row.wall_s:.0f} s", flush=True
            )
            rows.append(row)
    print(machine_line())
    print(
        f"{args.rows} demo rows, local/smollm2 as task and reasoning model, --max-calls "
        f"{args.max_calls}, --max-iterations {args.max_iterations}, --batch-size "
        f"{args.batch_size}, --max-tokens {args.max_tokens}, --reasoning-max-tokens "
        f"{args.reasoning_max_tokens}"
    )
    table(rows, args.markdown)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
