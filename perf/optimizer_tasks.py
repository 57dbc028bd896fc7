"""``assay optimize`` on three public tasks, against single strategies and peers, at one budget.

    python -m perf.optimizer_tasks [--tasks implicatures,navigate,hyperbaton] [--seeds 0,1,2]
        [--strategies default,screen,iterative,pareto,structural,fewshot] [--peers reflex,gepa]
        [--max-calls 300] [--opt-rows 200] [--test-rows 100] [--split 0.6,0.3,0.1]
        [--tasks-dir ../shared/tasks] [--quick] [--markdown] [--json PATH]

The tasks (``<name>.jsonl`` with ``id``/``input``/``ideal``, and ``<name>_prompt.md``, a plain
starting prompt) are BIG-bench classification tasks; see ``--tasks-dir``'s README. The embedded
model (``local/smollm2``, SmolLM2-135M) is the task model and the reasoner for every run, with
task replies capped at ``--max-tokens`` (8) and rewrites at ``--reasoning-max-tokens`` (160).

Per task and seed, the rows are shuffled with the seed: the first ``--test-rows`` are held out
(the test set of this benchmark) and the next ``--opt-rows`` are the optimizer's data. Each
method gets the same ``--max-calls`` (task and reasoning calls together, everything the
optimizer does: its baseline, search, val checks and its own small final test, which
``--split`` keeps to 10% of its rows), its own run store and no response cache, so nothing is
served from another run. ``default`` is ``assay optimize`` with no ``--strategy`` (``auto``);
every other name is ``--strategy NAME``. Then the starting prompt and the method's final
prompt are scored on the held-out rows (outside the budget; the starting prompt once per task
and seed): the test scores with 95% CIs, the paired sign-flip p-value of the gain, and the
val -> test gap (the optimizer's val score of its final prompt minus its held-out score).

Peers (aevyra-reflex, gepa) run as in ``perf.optimizer_peers``, from their own venv
(``--peers-venv``), against that module's model server, when they are installed; otherwise
their rows say "skipped". They get the same rows with the prompt as a system prompt (its
``{{input}}`` line dropped), as their adapters send one. Their calls are what the model server
counted around each run; aevyra-reflex has no call cap (3 iterations of 8 rows), so a run past
``--max-calls`` says "over N" in the calls column. Each peer's final prompt is also scored
against the system prompt it was sent (its own effect; a separate table).

``--quick`` is a smoke run: 40 optimizer rows, 20 held out, 120 calls, seed 0. Interrupted
(Ctrl-C), the script reports the runs that finished.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from perf.common import REPO_ROOT, child_env, machine_line, print_table

TASKS = ("implicatures", "navigate", "hyperbaton")
STRATEGIES = ("default", "screen", "iterative", "pareto", "structural", "fewshot")
PEERS = ("reflex", "gepa")
TASKS_DIR = REPO_ROOT.parent / "shared" / "tasks"
PEERS_VENV = Path("/tmp/peers-venv")


@dataclass
class Row:
    task: str
    seed: int
    method: str
    status: str  # "ok", "skipped: ...", "failed: ..."
    baseline_test: float | None = None
    baseline_ci: tuple[float | None, float | None] = (None, None)
    final_test: float | None = None
    final_ci: tuple[float | None, float | None] = (None, None)
    gain: float | None = None
    gain_ci: tuple[float | None, float | None] = (None, None)
    p_value: float | None = None
    val_final: float | None = None
    gap: float | None = None
    calls: int = 0
    reasoning_calls: int = 0
    budget: int = 0  # the --max-calls the run was given; a peer without a cap can pass it
    wall_s: float = 0.0
    accepted: int = 0
    iterations: int = 0
    stopped: str = ""
    best_prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def significant(self) -> str:
        if self.p_value is None or self.gain is None or self.p_value >= 0.05:
            return ""
        return "gain" if self.gain > 0 else "loss"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Prepared:
    task: str
    seed: int
    opt: Path
    test: Path
    prompt: Path


def prepare(task: str, seed: int, args: argparse.Namespace, work: Path) -> Prepared:
    text = (args.tasks_dir / f"{task}.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    random.Random(seed).shuffle(rows)
    test, opt = rows[: args.test_rows], rows[args.test_rows : args.test_rows + args.opt_rows]
    folder = work / f"{task}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = Prepared(task, seed, folder / "opt.jsonl", folder / "test.jsonl", folder / "prompt.md")
    paths.opt.write_text("".join(json.dumps(r) + "\n" for r in opt))
    paths.test.write_text("".join(json.dumps(r) + "\n" for r in test))
    paths.prompt.write_text((args.tasks_dir / f"{task}_prompt.md").read_text())
    return paths


# --------------------------------------------------------------------------- held-out scoring


class HeldOut:
    """Scores prompts on the held-out rows with the label metric; a (prompt, row) is scored
    once per benchmark, so the starting prompt costs one pass per task and seed."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self._scores: dict[tuple[str, str], Any] = {}

    def values(self, prompt_text: str, test: Path) -> list[float | None]:
        return [score.value for score in self.scores(prompt_text, test)]

    def scores(self, prompt_text: str, test: Path) -> list[Any]:
        """Each held-out row's ``Score``, in file order (its details hold the predicted label)."""
        from assay.data import load_dataset
        from assay.data.prompts import PromptTemplate

        samples = load_dataset(test).samples
        prompt = PromptTemplate.from_text(prompt_text)
        todo = [s for s in samples if (prompt.hash, s.id) not in self._scores]
        if todo:
            self._scores.update(asyncio.run(self._score(prompt, todo, samples)))
        return [self._scores[(prompt.hash, s.id)] for s in samples]

    async def _score(self, prompt: Any, todo: list[Any], every: list[Any]) -> dict[Any, Any]:
        from assay.engine.engine import Engine, EngineConfig
        from assay.pricing import PriceTable
        from assay.providers import specs
        from assay.records import GenerationParams, Request
        from assay.scoring.metrics import build_metrics

        model = specs.resolve_model("local/smollm2")
        (metric,) = build_metrics(["label"], every)
        params = GenerationParams(max_tokens=self.max_tokens, temperature=0.0, seed=0)
        async with Engine(EngineConfig(), prices=PriceTable.bundled()) as engine:

            async def one(sample: Any) -> tuple[tuple[str, str], Any]:
                request = Request(messages=prompt.render(sample), params=params)
                completion = await engine.complete(model, request)
                return (prompt.hash, sample.id), metric(sample, completion.text)

            return dict(await asyncio.gather(*(one(s) for s in todo)))


def starting_prompt(data: Prepared) -> str:
    """The starting prompt exactly as the optimizer reads it (a trailing newline dropped): the
    small model answers differently to a prompt that differs only by it."""
    from assay.data.prompts import load_prompt

    return load_prompt(data.prompt).text


def mean_ci(
    values: list[float | None], seed: int
) -> tuple[float | None, tuple[float | None, float | None]]:
    """The mean of held-out values with its 95% bootstrap CI (unscored rows count as missing)."""
    from assay.scoring.stats import aggregate_values

    scored = [v for v in values if v is not None]
    a = aggregate_values(scored, len(values) - len(scored), 0, seed=seed)
    return a.mean, (a.ci_low, a.ci_high)


def score_row(row: Row, held: HeldOut, data: Prepared, best_prompt: str) -> Row:
    """The held-out figures of ``best_prompt`` against the starting prompt."""
    from assay.scoring.stats import paired_compare

    base = held.values(starting_prompt(data), data.test)
    final = held.values(best_prompt, data.test)
    gain = paired_compare(base, final, seed=data.seed)
    row.baseline_test, row.baseline_ci = mean_ci(base, data.seed)
    row.final_test, row.final_ci = mean_ci(final, data.seed)
    row.gain, row.gain_ci, row.p_value = gain.diff, (gain.ci_low, gain.ci_high), gain.p_value
    if row.val_final is not None and row.final_test is not None:
        row.gap = row.val_final - row.final_test
    row.best_prompt = best_prompt
    return row


# --------------------------------------------------------------------------- assay


def optimize_config(data: Prepared, strategy: str, args: argparse.Namespace) -> Any:
    from assay.engine.engine import Budget, EngineConfig
    from assay.evaluation.config import ScoringConfig
    from assay.optimizer.config import OptimizeConfig, SplitConfig
    from assay.providers import specs
    from assay.records import GenerationParams

    train, val, test = args.split
    options: dict[str, Any] = {} if strategy == "default" else {"strategy": strategy}
    return OptimizeConfig(
        data=str(data.opt),
        prompt=str(data.prompt),
        model=specs.resolve_model("local/smollm2"),
        scoring=ScoringConfig(metrics=["label"]),
        params=GenerationParams(max_tokens=args.max_tokens, temperature=0.0, seed=0),
        reasoning_max_tokens=args.reasoning_max_tokens,
        split=SplitConfig(train=train, val=val, test=test, seed=data.seed),
        seed=data.seed,
        engine=EngineConfig(budget=Budget(max_calls=args.max_calls), use_cache=False),
        **options,
    )


def run_assay(data: Prepared, strategy: str, args: argparse.Namespace, held: HeldOut) -> Row:
    from assay.jobs import OptimizeJob, Session

    config = optimize_config(data, strategy, args)
    with tempfile.TemporaryDirectory(prefix="assay-tasks-") as store:
        job = OptimizeJob.prepare(Session.open(store, use_cache=False), config)
        started = time.perf_counter()
        result = job.execute()
        wall = time.perf_counter() - started
    reasoning = sum(len(r.reasoner_replies) for r in result.trajectory)
    reasoning += sum(1 for r in result.trajectory if r.strategy_state.get("chooser_reply"))
    row = Row(
        task=data.task,
        seed=data.seed,
        method=strategy,
        status="ok",
        val_final=result.final.val.mean,
        calls=result.spend.calls,
        reasoning_calls=reasoning,
        budget=args.max_calls,
        wall_s=wall,
        accepted=result.accepted,
        iterations=result.iterations,
        stopped=result.stopped_reason or "",
        extra={"own_test": [result.baseline.test.mean, result.final.test.mean]},
    )
    return score_row(row, held, data, result.best_prompt)


# --------------------------------------------------------------------------- peers


def peer_missing(peer: str, venv: Path) -> str | None:
    """Why a peer cannot run here, or None."""
    if peer == "reflex":
        found = (venv / "bin" / "aevyra-reflex").exists()
        return None if found else f"skipped: aevyra-reflex is not installed in {venv}"
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import gepa"]).returncode == 0:
        return None
    return f"skipped: gepa is not installed in {venv}"


def system_prompt(template: str) -> str:
    """The starting prompt as peers send it: a system prompt, without its slot lines."""
    from assay.data.prompts import SLOT

    kept = [line for line in template.splitlines() if not SLOT.search(line)]
    return "\n".join(kept).strip() or "Answer the question."


def peer_data(data: Prepared, work: Path) -> tuple[Path, Path]:
    """This task's optimizer rows as the peers read them: text/label rows (gepa) and chat rows
    with an ``ideal`` (aevyra-reflex)."""
    rows = [json.loads(line) for line in data.opt.read_text().splitlines()]
    opt, msgs = work / "opt.jsonl", work / "opt_msgs.jsonl"
    opt.write_text("".join(json.dumps({"text": r["input"], "label": r["ideal"]}) + "\n"
                           for r in rows))  # fmt: skip
    msgs.write_text("".join(json.dumps({"messages": [{"role": "user", "content": r["input"]}],
                                        "ideal": r["ideal"]}) + "\n" for r in rows))  # fmt: skip
    return opt, msgs


def run_peer(
    peer: str, data: Prepared, args: argparse.Namespace, held: HeldOut, server: Any
) -> Row:
    """One peer through ``perf.optimizer_peers``; its calls are what the model server counted."""
    from perf import optimizer_peers as op

    work = data.opt.parent / peer
    work.mkdir(exist_ok=True)
    opt, msgs = peer_data(data, work)
    prompt = work / "prompt.md"
    prompt.write_text(system_prompt(data.prompt.read_text()))
    peer_args = argparse.Namespace(max_calls=args.max_calls, peers_venv=args.peers_venv,
                                   reflex_iterations=3, reflex_batch=8)  # fmt: skip
    env = {**child_env(), "OPENAI_COMPAT_API_KEY": "x"}
    before = server.counts()
    if peer == "gepa":
        result = op.run_gepa(opt, prompt, server, work, env, peer_args, data.seed)
    else:
        result = op.run_reflex(msgs, prompt, server, work, env, peer_args)
    after = server.counts()
    spent = {k: after[k] - before[k] for k in ("task", "reasoning", "errors")}
    status = "ok" if result["rc"] == 0 else f"failed: exit {result['rc']}"
    own = {"own_baseline": result.get("own_baseline"), "own_final": result.get("own_final")}
    row = Row(data.task, data.seed, peer, status, calls=spent["task"] + spent["reasoning"],
              reasoning_calls=spent["reasoning"], budget=args.max_calls,
              wall_s=result["wall_s"], extra={**own, "server_errors": spent["errors"]})  # fmt: skip
    if result["rc"] != 0:
        row.extra["tail"] = result["tail"]
    # gepa's own final score is on its val half with the label metric, as Assay's val score
    # is; aevyra-reflex's is on its own test split with ``exact``, so it makes no gap.
    if peer == "gepa":
        row.val_final = result.get("own_final")
    if result["best"] is None:
        return row
    return score_peer(row, held, data, prompt.read_text(), result["best"].read_text())


def score_peer(row: Row, held: HeldOut, data: Prepared, sent: str, best: str) -> Row:
    """The held-out figures of a peer's final prompt, against the task's starting prompt (the
    columns every method shares) and against the system prompt the peer was sent (its own
    effect: peers get the prompt in another form, which the small model answers differently)."""
    from assay.scoring.stats import paired_compare

    best = best.replace("\r\n", "\n").strip()  # as ``assay run`` loads a prompt file
    start = held.values(sent, data.test)
    gain = paired_compare(start, held.values(best, data.test), seed=data.seed)
    row.extra["sent_test"] = mean_ci(start, data.seed)[0]
    row.extra["gain_over_sent"] = gain.diff
    row.extra["gain_over_sent_ci"] = (gain.ci_low, gain.ci_high)
    row.extra["gain_over_sent_p"] = gain.p_value
    row.accepted = int(" ".join(best.split()) != " ".join(sent.split()))
    return score_row(row, held, data, best)


# --------------------------------------------------------------------------- report


def _f(value: float | None, fmt: str = "{:.3f}") -> str:
    return "–" if value is None else fmt.format(value)


def _ci(pair: tuple[float | None, float | None], fmt: str = "{:.2f}") -> str:
    return f"[{_f(pair[0], fmt)}, {_f(pair[1], fmt)}]"


COLUMNS = [
    "task", "seed", "method", "test before [95% CI]", "test after [95% CI]", "gain [95% CI]",
    "p", "sig.", "val -> test gap", "calls (reasoning)", "wall s", "accepted/iters",
]  # fmt: skip


def calls_cell(r: Row) -> str:
    over = f", over {r.budget}" if r.budget and r.calls > r.budget else ""
    return f"{r.calls} ({r.reasoning_calls}){over}"


def changes_cell(r: Row) -> str:
    """Accepted steps of iterations; a peer reports neither, so whether its prompt changed."""
    if r.method in PEERS:
        return "changed" if r.accepted else "kept"
    return f"{r.accepted}/{r.iterations}"


def table_cells(rows: Sequence[Row]) -> list[list[str]]:
    cells = []
    for r in rows:
        if r.status != "ok" and r.final_test is None:
            cells.append([r.task, str(r.seed), r.method, r.status, *[""] * (len(COLUMNS) - 4)])
            continue
        cells.append(
            [
                r.task, str(r.seed), r.method,
                f"{_f(r.baseline_test)} {_ci(r.baseline_ci)}",
                f"{_f(r.final_test)} {_ci(r.final_ci)}",
                f"{_f(r.gain, '{:+.3f}')} {_ci(r.gain_ci, '{:+.2f}')}",
                _f(r.p_value, "{:.2g}"), r.significant or "–", _f(r.gap, "{:+.3f}"),
                calls_cell(r), f"{r.wall_s:.0f}", changes_cell(r),
            ]
        )  # fmt: skip
    return cells


def peer_cells(rows: Sequence[Row]) -> list[list[str]]:
    """A peer's own effect: its final prompt against the system prompt it started from, and
    the scores it reported itself (its own split and metric: not comparable across tools)."""
    cells = []
    for r in rows:
        x = r.extra
        cells.append(
            [
                r.task, str(r.seed), r.method, _f(x.get("sent_test")), _f(r.final_test),
                f"{_f(x.get('gain_over_sent'), '{:+.3f}')} "
                f"{_ci(x.get('gain_over_sent_ci', (None, None)), '{:+.2f}')}",
                _f(x.get("gain_over_sent_p"), "{:.2g}"),
                f"{_f(x.get('own_baseline'))} -> {_f(x.get('own_final'))}",
                str(x.get("server_errors", 0)),
            ]
        )  # fmt: skip
    return cells


def summary_cells(rows: Sequence[Row]) -> list[list[str]]:
    """Per method: mean gain, significant gains and losses, mean gap, mean calls."""
    cells = []
    for method in dict.fromkeys(r.method for r in rows):
        ran = [r for r in rows if r.method == method and r.gain is not None]
        if not ran:
            cells.append([method, "0", "–", "–", "–", "–", "–"])
            continue
        gaps = [r.gap for r in ran if r.gap is not None]
        cells.append(
            [
                method, str(len(ran)),
                f"{sum(r.gain or 0.0 for r in ran) / len(ran):+.3f}",
                str(sum(r.significant == "gain" for r in ran)),
                str(sum(r.significant == "loss" for r in ran)),
                _f(sum(gaps) / len(gaps) if gaps else None, "{:+.3f}"),
                f"{sum(r.calls for r in ran) / len(ran):.0f}",
            ]
        )  # fmt: skip
    return cells


def goals(rows: Sequence[Row]) -> list[str]:
    """The issue's goals for the default, each met or missed, with the numbers."""
    default = [r for r in rows if r.method == "default" and r.gain is not None]
    if not default:
        return ["no default run to check the goals on"]
    lines = []
    for seed in sorted({r.seed for r in default}):
        wins = [r.task for r in default if r.seed == seed and r.significant == "gain"]
        n = sum(r.seed == seed for r in default)
        ok = "met" if len(wins) >= min(2, n) else "missed"
        lines.append(f"seed {seed}: significant test gain on {len(wins)} of {n} tasks "
                     f"({', '.join(wins) or 'none'}): goal >= 2, {ok}")  # fmt: skip
    losses = [f"{r.task}/{r.seed}" for r in default if r.significant == "loss"]
    lines.append(f"significant test losses: {len(losses)} ({', '.join(losses) or 'none'}): "
                 f"goal 0, {'met' if not losses else 'missed'}")  # fmt: skip
    gaps = [r.gap for r in default if r.gap is not None]
    gap = sum(gaps) / len(gaps) if gaps else None
    lines.append(f"mean val -> test gap {_f(gap, '{:+.3f}')}: goal <= 0.05, "
                 f"{'met' if gap is not None and gap <= 0.05 else 'missed'}")  # fmt: skip
    mean = sum(r.gain or 0.0 for r in default) / len(default)
    for peer in PEERS:
        theirs = [r for r in rows if r.method == peer and r.gain is not None]
        if not theirs:
            lines.append(f"mean gain vs {peer}: not measured ({peer} did not run)")
            continue
        other = sum(r.gain or 0.0 for r in theirs) / len(theirs)
        verdict = "met" if mean > other else "missed"
        lines.append(f"mean gain {mean:+.3f} vs {peer} {other:+.3f}: goal higher, {verdict}")
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m perf.optimizer_tasks")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--peers", default=",".join(PEERS), help="'' for none")
    parser.add_argument("--max-calls", type=int, default=300)
    parser.add_argument("--opt-rows", type=int, default=200)
    parser.add_argument("--test-rows", type=int, default=100)
    parser.add_argument("--split", default="0.6,0.3,0.1", help="the optimizer's own split")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--reasoning-max-tokens", type=int, default=160)
    parser.add_argument("--tasks-dir", type=Path, default=TASKS_DIR)
    parser.add_argument("--peers-venv", type=Path, default=PEERS_VENV)
    parser.add_argument("--port", type=int, default=11434, help="the peers' model server")
    parser.add_argument("--quick", action="store_true", help="40 + 20 rows, 120 calls, seed 0")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.opt_rows, args.test_rows, args.max_calls, args.seeds = 40, 20, 120, "0"
    args.split = tuple(float(x) for x in args.split.split(","))
    for name in ("tasks", "seeds", "strategies", "peers"):
        setattr(args, name, [x.strip() for x in getattr(args, name).split(",") if x.strip()])
    args.seeds = [int(s) for s in args.seeds]
    unknown = [s for s in args.strategies if s not in STRATEGIES] + [
        p for p in args.peers if p not in PEERS
    ]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(STRATEGIES + PEERS)}")
    return args


def run_peers(data: Prepared, args: argparse.Namespace, held: HeldOut, rows: list[Row]) -> None:
    """Appends each peer's row to ``rows`` as it finishes (an interrupted run reports them)."""
    missing = {p: peer_missing(p, args.peers_venv) for p in args.peers}
    rows += [Row(data.task, data.seed, p, why) for p, why in missing.items() if why]
    ready = [p for p, why in missing.items() if why is None]
    if ready:
        from perf.optimizer_peers import ModelServer

        with ModelServer(args.port, args.max_tokens, args.reasoning_max_tokens) as server:
            for peer in ready:
                rows.append(run_peer(peer, data, args, held, server))
                progress(rows[-1])


def progress(row: Row) -> None:
    print(f"{row.task} seed {row.seed} {row.method}: {_f(row.baseline_test)} -> "
          f"{_f(row.final_test)} (p {_f(row.p_value, '{:.2g}')}), {calls_cell(row)} calls, "
          f"{row.wall_s:.0f} s{'' if row.status == 'ok' else ', ' + row.status}",
          flush=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    held = HeldOut(args.max_tokens)
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        run_grid(args, held, rows)
    except KeyboardInterrupt:  # a long grid stopped by hand still reports the runs it finished
        print(f"interrupted: {len(rows)} runs finished", flush=True)
    report(rows, args, time.perf_counter() - started)
    return rows


def run_grid(args: argparse.Namespace, held: HeldOut, rows: list[Row]) -> None:
    with tempfile.TemporaryDirectory(prefix="assay-optimizer-tasks-") as tmp:
        for seed in args.seeds:
            for task in args.tasks:
                data = prepare(task, seed, args, Path(tmp))
                for strategy in args.strategies:
                    rows.append(run_assay(data, strategy, args, held))
                    progress(rows[-1])
                run_peers(data, args, held, rows)


def report(rows: Sequence[Row], args: argparse.Namespace, wall: float) -> None:
    print(machine_line())
    print(
        f"local/smollm2 as task and reasoner; --max-calls {args.max_calls} per run (optimizer "
        f"rows {args.opt_rows}, its split {','.join(map(str, args.split))}); "
        f"{args.test_rows} held-out rows per task and seed; --max-tokens {args.max_tokens}, "
        f"--reasoning-max-tokens {args.reasoning_max_tokens}; {wall / 60:.0f} min in all"
    )
    print_table("Held-out test, per run", COLUMNS, table_cells(rows), markdown=args.markdown)
    print_table(
        "Per method",
        ["method", "runs", "mean gain", "sig. gains", "sig. losses", "mean gap", "mean calls"],
        summary_cells(rows),
        markdown=args.markdown,
    )
    peers = [r for r in rows if r.method in PEERS and r.final_test is not None]
    if peers:
        print_table(
            "Peers against the system prompt they were sent",
            ["task", "seed", "method", "sent prompt test", "final test",
             "gain over sent [95% CI]", "p", "own baseline -> final", "server errors"],
            peer_cells(peers), markdown=args.markdown,
        )  # fmt: skip
    for line in goals(rows):
        print(f"- {line}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
