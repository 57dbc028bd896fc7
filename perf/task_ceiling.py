"""Is it the model? A fixed panel of hand-written prompts on ``perf.optimizer_tasks``' rows.

    python -m perf.task_ceiling [--tasks implicatures,navigate,hyperbaton] [--seeds 0,1,2]
        [--opt-rows 200] [--test-rows 100] [--max-tokens 8] [--tasks-dir ../shared/tasks]
        [--rows held-out|optimizer] [--quick] [--markdown] [--json PATH]

``perf.optimizer_tasks`` found no significant gain on implicatures and hyperbaton. This asks
whether any prompt of the kinds the search tries would have had one: per task and seed, on the
same held-out rows (the same shuffle, the same 100 rows, scored the same way, through that
module's ``prepare`` and ``HeldOut``), the embedded model answers six prompts:

    a  the starting prompt, as the optimizer reads it
    b  a + the format rule ("Answer with one word: <labels>.") and cue, the optimizer's format_cue
    c  b + 4 labelled demonstrations, labels balanced
    d  b + 8 labelled demonstrations, labels balanced
    e  d with the demonstrations in reverse order
    f  the labels with a one-line definition each, then the input, rule and cue

Demonstrations come from the optimizer's rows only (never a held-out row), in the optimizer's
own ``## Examples`` layout. Per prompt: the score with its 95% CI, the paired gain over ``a``
with its sign-flip p-value (``assay.scoring.stats.paired_compare``), the share of answers that
hold the most common label (constant-answer share) and the share that hold no label.

The panel is scored on the held-out rows and its best row is picked there: that is selection
on test, on purpose. It is an upper bound on what choosing among these prompts could give, not
a fair method; a task where even this finds no gain is one the model cannot do this way.

``--rows optimizer`` scores the prompts without demonstrations (a, b, f) on the optimizer's
own 200 rows instead: whether a gain on the held-out rows was there to see in the data the
optimizer selects on, or a property of those 100 rows.

``--quick`` is a smoke run: 40 optimizer rows, 20 held out, seed 0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from perf.common import machine_line, print_table
from perf.optimizer_tasks import TASKS, TASKS_DIR, HeldOut, Prepared, _ci, _f, prepare
from perf.optimizer_tasks import starting_prompt as read_starting_prompt

PANEL = {
    "a": "starting prompt",
    "b": "a + format rule and cue",
    "c": "b + 4 demos",
    "d": "b + 8 demos",
    "e": "d reversed",
    "f": "label definitions",
}

NO_DEMOS = ("a", "b", "f")  # the prompts that can be scored on the rows demonstrations come from

DEFINITIONS: dict[str, tuple[str, dict[str, str]]] = {
    "implicatures": (
        "Speaker 1 asks something; Speaker 2 answers indirectly. Decide what the answer means.",
        {
            "no": "Speaker 2's answer means no: it refuses, denies, disagrees or cannot help.",
            "yes": "Speaker 2's answer means yes: it agrees, accepts, confirms or will do it.",
        },
    ),
    "navigate": (
        "Start at a point, facing forward, and follow every instruction in turn. Decide whether "
        "you end where you started.",
        {
            "False": "after the last instruction you stand somewhere other than the start.",
            "True": "after the last instruction you stand on the starting point again.",
        },
    ),
    "hyperbaton": (
        "Sentences a and b list the same adjectives in different orders. English puts "
        "adjectives in this order: opinion, size, age, shape, colour, origin, material, "
        "purpose, then the noun.",
        {
            "a": "sentence a has its adjectives in that order.",
            "b": "sentence b has its adjectives in that order.",
        },
    ),
}


@dataclass
class PanelRow:
    task: str
    seed: int
    prompt: str  # a key of PANEL
    n: int
    score: float | None
    ci: tuple[float | None, float | None]
    gain: float | None  # over prompt a, paired; None for a itself
    gain_ci: tuple[float | None, float | None]
    p_value: float | None
    constant_label: str | None
    constant_share: float
    no_label_share: float
    balanced: float  # mean per-label recall: 0.5 for any constant answer on two labels
    text: str
    predicted: list[str | None]  # per held-out row, in file order; None = no label
    expected: list[str]

    @property
    def significant(self) -> str:
        if self.p_value is None or self.gain is None or self.p_value >= 0.05:
            return ""
        return "gain" if self.gain > 0 else "loss"


# --------------------------------------------------------------------------- the panel


def panel(task: str, data: Prepared) -> dict[str, str]:
    """The six prompts for one task and seed, by PANEL key."""
    from assay.data import load_dataset
    from assay.optimizer.strategies.bootstrap import label_balanced
    from assay.optimizer.strategies.fewshot import with_examples
    from assay.optimizer.strategies.formats import format_variants, label_set

    rows = load_dataset(data.opt).samples  # the optimizer's rows: no held-out row among them
    labels = label_set(rows)
    start = read_starting_prompt(data)
    formatted = format_variants(start, labels)["format_cue"]
    eight = label_balanced(rows, 8)
    return {
        "a": start,
        "b": formatted,
        "c": with_examples(formatted, label_balanced(rows, 4)),
        "d": with_examples(formatted, eight),
        "e": with_examples(formatted, eight[::-1]),
        "f": definitions_prompt(task, labels),
    }


def definitions_prompt(task: str, labels: Sequence[str]) -> str:
    from assay.optimizer.strategies.formats import answer_cue, answer_instruction

    intro, meaning = DEFINITIONS[task]
    lines = "\n".join(f"{label}: {meaning[label]}" for label in labels)
    rule, cue = answer_instruction(labels), answer_cue(labels)
    return f"{intro}\n\nLabels:\n{lines}\n\n{{{{input}}}}\n\n{rule}\n{cue}"


# --------------------------------------------------------------------------- scoring


def measure(held: HeldOut, data: Prepared, key: str, text: str) -> PanelRow:
    """One prompt's held-out figures, its gain paired with the starting prompt's answers."""
    from assay.data import load_dataset
    from assay.scoring.stats import aggregate_values, paired_compare

    scores = held.scores(text, data.test)
    values = [s.value for s in scores]
    scored = [v for v in values if v is not None]
    agg = aggregate_values(scored, len(values) - len(scored), 0, seed=data.seed)
    predicted = [s.details.get("predicted") for s in scores]
    expected = [s.reference or "" for s in load_dataset(data.test).samples]
    labelled = Counter(p for p in predicted if p is not None)
    top, count = labelled.most_common(1)[0] if labelled else (None, 0)
    row = PanelRow(
        data.task, data.seed, key, len(values), agg.mean, (agg.ci_low, agg.ci_high),
        None, (None, None), None, top, count / len(values),
        predicted.count(None) / len(values), balanced_accuracy(predicted, expected), text,
        predicted, expected,
    )  # fmt: skip
    if key != "a":
        base = held.values(read_starting_prompt(data), data.test)
        gain = paired_compare(base, values, seed=data.seed)
        row.gain, row.gain_ci, row.p_value = gain.diff, (gain.ci_low, gain.ci_high), gain.p_value
    return row


def balanced_accuracy(predicted: Sequence[str | None], expected: Sequence[str]) -> float:
    """The mean over reference labels of the share of that label's rows answered with it: a
    prompt that tells rows apart scores above 1/labels, one that answers a constant does not,
    however the held-out labels happen to be split."""
    recalls = []
    for label in {e.casefold() for e in expected}:
        rows = [p for p, e in zip(predicted, expected, strict=True) if e.casefold() == label]
        recalls.append(sum((p or "").casefold() == label for p in rows) / len(rows))
    return sum(recalls) / len(recalls)


# --------------------------------------------------------------------------- report

ROWS = {  # --rows: (the table's title, where the panel is read)
    "held-out": ("held-out test", "held-out rows (selection on test)"),
    "optimizer": ("the optimizer's own rows", "optimizer's own rows, a, b and f only"),
}
COLUMNS = [
    "task", "seed", "prompt", "score [95% CI]", "gain vs a [95% CI]", "p", "sig.",
    "constant-answer share", "no label", "balanced acc.",
]  # fmt: skip


def _share(value: float, label: str | None = None) -> str:
    return f"{value:.2f}" + (f" ({label})" if label else "")


def table_cells(rows: Sequence[PanelRow]) -> list[list[str]]:
    return [
        [
            r.task, str(r.seed), f"{r.prompt}: {PANEL[r.prompt]}", f"{_f(r.score)} {_ci(r.ci)}",
            "–" if r.gain is None else f"{_f(r.gain, '{:+.3f}')} {_ci(r.gain_ci, '{:+.2f}')}",
            _f(r.p_value, "{:.2g}"), r.significant or "–",
            _share(r.constant_share, r.constant_label), _share(r.no_label_share),
            _share(r.balanced),
        ]
        for r in rows
    ]  # fmt: skip


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def summary_cells(rows: Sequence[PanelRow]) -> list[list[str]]:
    """Per task and prompt, over the seeds."""
    cells = []
    for task, key in dict.fromkeys((r.task, r.prompt) for r in rows):
        mine = [r for r in rows if (r.task, r.prompt) == (task, key)]
        gains = [r.gain for r in mine if r.gain is not None]
        cells.append(
            [
                task, f"{key}: {PANEL[key]}", str(len(mine)),
                _f(_mean([r.score or 0.0 for r in mine])),
                _f(_mean(gains), "{:+.3f}") if gains else "–",
                f"{sum(r.significant == 'gain' for r in mine)} / "
                f"{sum(r.significant == 'loss' for r in mine)}",
                _share(_mean([r.constant_share for r in mine])),
                _share(_mean([r.no_label_share for r in mine])),
                _share(_mean([r.balanced for r in mine])),
            ]
        )  # fmt: skip
    return cells


def verdicts(rows: Sequence[PanelRow]) -> list[str]:
    """Per task: the significant gains over the starting prompt (with how well each prompt
    tells the labels apart), and the best row, picked on test."""
    lines = []
    for task in dict.fromkeys(r.task for r in rows):
        mine = [r for r in rows if r.task == task]
        tests = [r for r in mine if r.p_value is not None]
        wins = [r for r in tests if r.significant == "gain"]
        strict = 0.05 / len(tests) if tests else 0.05
        listed = ", ".join(
            f"{r.prompt}/seed {r.seed} {_f(r.gain, '{:+.3f}')} (p {_f(r.p_value, '{:.2g}')}, "
            f"balanced acc. {r.balanced:.2f})"
            for r in wins
        )
        best = max(mine, key=lambda r: r.score or 0.0)
        sharpest = max(mine, key=lambda r: r.balanced)
        lines.append(
            f"{task}: significant gains over a in {len(wins)} of {len(tests)} comparisons "
            f"({listed or 'none'}); {sum((r.p_value or 1) < strict for r in wins)} below the "
            f"Bonferroni bar p < {strict:.2g}; best row {best.prompt}/seed {best.seed} at "
            f"{_f(best.score)}, best balanced acc. {sharpest.balanced:.2f} "
            f"({sharpest.prompt}/seed {sharpest.seed}); chosen on the rows scored: bounds"
        )
    return lines


def report(rows: Sequence[PanelRow], args: argparse.Namespace, wall: float) -> None:
    print(machine_line())
    print(
        f"local/smollm2, --max-tokens {args.max_tokens}; {args.test_rows} held-out rows per task "
        f"and seed (perf.optimizer_tasks' split), demonstrations from its {args.opt_rows} "
        f"optimizer rows; {wall / 60:.0f} min in all. The panel is scored and read on the "
        f"{ROWS[args.rows][1]}: an upper bound, not a method."
    )
    title = f"Prompt panel, {ROWS[args.rows][0]}"
    print_table(title, COLUMNS, table_cells(rows), markdown=args.markdown)
    print_table(
        "Per task and prompt, over the seeds",
        ["task", "prompt", "seeds", "mean score", "mean gain vs a", "sig. gains / losses",
         "mean constant-answer share", "mean no label", "mean balanced acc."],
        summary_cells(rows),
        markdown=args.markdown,
    )  # fmt: skip
    for line in verdicts(rows):
        print(f"- {line}")
    if args.json is not None:
        records = [{**asdict(r), "significant": r.significant} for r in rows]
        args.json.write_text(json.dumps(records, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m perf.task_ceiling")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--opt-rows", type=int, default=200)
    parser.add_argument("--test-rows", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--tasks-dir", type=Path, default=TASKS_DIR)
    parser.add_argument(
        "--rows",
        choices=("held-out", "optimizer"),
        default="held-out",
        help="score on the held-out rows, or (a, b, f only) on the optimizer's own rows",
    )
    parser.add_argument("--quick", action="store_true", help="40 + 20 rows, seed 0")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.opt_rows, args.test_rows, args.seeds = 40, 20, "0"
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    unknown = [t for t in args.tasks if t not in DEFINITIONS]
    if unknown:
        parser.error(f"unknown tasks {unknown}; known: {', '.join(DEFINITIONS)}")
    return args


def main(argv: Sequence[str] | None = None) -> list[PanelRow]:
    args = parse_args(argv)
    held = HeldOut(args.max_tokens)
    rows: list[PanelRow] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="assay-task-ceiling-") as tmp:
        for seed in args.seeds:
            for task in args.tasks:
                data = scored_rows(prepare(task, seed, args, Path(tmp)), args.rows)
                for key, text in panel(task, data).items():
                    if args.rows == "held-out" or key in NO_DEMOS:
                        rows.append(measure(held, data, key, text))
                        _progress(rows[-1])
    report(rows, args, time.perf_counter() - started)
    return rows


def scored_rows(data: Prepared, rows: str) -> Prepared:
    """``data`` with the rows to score as its test file."""
    return data if rows == "held-out" else replace(data, test=data.opt)


def _progress(row: PanelRow) -> None:
    print(f"{row.task} seed {row.seed} {row.prompt}: {_f(row.score)} "
          f"(p {_f(row.p_value, '{:.2g}')}), constant {row.constant_share:.2f} "
          f"{row.constant_label}, no label {row.no_label_share:.2f}, "
          f"balanced {row.balanced:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
