"""Wall time of the ``assay`` entry points against bare interpreter start, and slow imports.

    python -m perf.startup [--repeat 10] [--target 0.3] [--json PATH] [--markdown]

Each command runs ``--repeat`` times (after one unmeasured warm-up) as a fresh subprocess; the
table shows the median. The baseline, measured in the same run, is ``python -c pass``.

Children run with bytecode caching on, in a private ``PYTHONPYCACHEPREFIX`` (so nothing is
written into the source tree): that is how a user's installed ``assay`` starts. The column
"PYTHONDONTWRITEBYTECODE=1" repeats the median with that variable set and no prefix: modules
without a ``.pyc`` beside them (all of ``src/assay`` in an editable install that never wrote
one) are compiled from source on every start, as in sandboxes that set the variable.

The import report runs ``assay --help`` and ``assay runs`` under ``python -X importtime`` and
lists the heaviest modules (cumulative) and top-level packages (sum of their modules' own time).
``-X importtime`` itself slows imports, so its totals exceed the plain wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from perf.common import machine_line, median, print_table

IMPORT_TARGETS = {"assay --help": ("--help",), "assay runs": ("runs",)}
"""The commands whose imports are reported, and their arguments."""
WATCHED = (
    "openai",
    "anthropic",
    "httpx",
    "httpx2",
    "pydantic",
    "numpy",
    "scipy",
    "sqlite3",
    "yaml",
    "jsonschema",
    "rouge_score",
    "sacrebleu",
    "xllamacpp",
    "rich",
    "typer",
    "click",
)
"""Packages worth knowing about when ``assay --help`` imports them."""


@dataclass(frozen=True)
class Command:
    name: str
    argv: tuple[str, ...]


@dataclass
class Timing:
    name: str
    median_s: float
    min_s: float
    median_no_pyc_s: float | None
    exit_code: int


def venv_bin() -> Path:
    """The directory of this interpreter (the venv's ``bin``, where ``assay`` lives)."""
    return Path(sys.executable).parent


def commands() -> list[Command]:
    python = sys.executable
    assay = str(venv_bin() / "assay")
    return [
        Command("python -c pass (baseline)", (python, "-c", "pass")),
        Command("python -c 'import assay.cli.main'", (python, "-c", "import assay.cli.main")),
        Command("assay --version", (assay, "--version")),
        Command("assay --help", (assay, "--help")),
        Command("assay runs (empty store)", (assay, "runs")),
    ]


def child_env(store: Path, pycache: Path | None) -> dict[str, str]:
    """With ``pycache``: bytecode cached there. Without: no .pyc written anywhere."""
    env = dict(os.environ)
    env["ASSAY_STORE"] = str(store)
    env["COLUMNS"] = "100"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def time_once(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=dict(env), cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started, done.returncode


def time_command(command: Command, env: Mapping[str, str], cwd: Path, repeat: int) -> list[float]:
    time_once(command.argv, env, cwd)  # warm-up: page cache, and .pyc files when enabled
    return [time_once(command.argv, env, cwd)[0] for _ in range(repeat)]


def measure_all(repeat: int) -> list[Timing]:
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="assay-startup-") as tmp:
        root = Path(tmp)
        warm = child_env(root / "store", root / "pycache")
        cold = child_env(root / "store", None)
        for command in commands():
            _, code = time_once(command.argv, warm, root)
            runs = time_command(command, warm, root, repeat)
            cold_runs = time_command(command, cold, root, repeat)
            timings.append(Timing(command.name, median(runs), min(runs), median(cold_runs), code))
            print(f"  {command.name}: {median(runs):.3f} s", file=sys.stderr, flush=True)
    return timings


# --------------------------------------------------------------------------- import report


@dataclass(frozen=True)
class ImportLine:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[ImportLine]:
    """Parse ``-X importtime`` lines: ``import time: self | cumulative | [indent]name``."""
    lines: list[ImportLine] = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:") or "imported package" in raw:
            continue
        try:
            self_us, cumulative_us, name = raw[len("import time:") :].split("|", 2)
            depth = (len(name) - len(name.lstrip(" "))) // 2
            lines.append(ImportLine(name.strip(), int(self_us), int(cumulative_us), depth))
        except ValueError:
            continue
    return lines


def main_script(args: Sequence[str]) -> str:
    """Python source that runs ``assay ARGS`` in-process (what the ``assay`` script does)."""
    argv = ["assay", *args]
    return f"import sys; sys.argv = {argv!r}; from assay.cli.main import main; main()"


def run_importtime(
    args: Sequence[str], env: Mapping[str, str], cwd: Path
) -> tuple[list[ImportLine], str]:
    """``assay ARGS`` under ``-X importtime``; returns the lines and any failure text."""
    argv = [sys.executable, "-X", "importtime", "-c", main_script(args)]
    done = subprocess.run(argv, env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    failure = ""
    if done.returncode != 0:
        tail = [ln for ln in done.stderr.splitlines() if not ln.startswith("import time:")]
        failure = "\n".join(tail[-5:]) or f"exit code {done.returncode}"
    return parse_importtime(done.stderr), failure


def top_cumulative(lines: Sequence[ImportLine], n: int = 10) -> list[ImportLine]:
    return sorted(lines, key=lambda line: line.cumulative_us, reverse=True)[:n]


def package_self_times(lines: Sequence[ImportLine]) -> dict[str, int]:
    """Sum of the modules' own import time, per top-level package."""
    totals: dict[str, int] = defaultdict(int)
    for line in lines:
        totals[line.module.split(".", 1)[0]] += line.self_us
    return dict(sorted(totals.items(), key=lambda item: item[1], reverse=True))


@dataclass
class ImportReport:
    command: str
    lines: list[ImportLine]
    packages: dict[str, int]
    failure: str


def import_report(command: str, args: Sequence[str], repeat: int) -> ImportReport:
    """The fastest of ``repeat`` runs (a median would mix module lists); .pyc cached."""
    best: list[ImportLine] = []
    failure = ""
    with tempfile.TemporaryDirectory(prefix="assay-importtime-") as tmp:
        root = Path(tmp)
        env = child_env(root / "store", root / "pycache")
        run_importtime(args, env, root)  # warm-up (writes .pyc)
        for _ in range(repeat):
            lines, failure = run_importtime(args, env, root)
            if not best or _total_us(lines) < _total_us(best):
                best = lines
    return ImportReport(command, best, package_self_times(best), failure)


def _total_us(lines: Sequence[ImportLine]) -> int:
    return sum(line.self_us for line in lines)


# --------------------------------------------------------------------------- report


def print_report(
    timings: Sequence[Timing], imports: Sequence[ImportReport], target_s: float, markdown: bool
) -> None:
    print(f"\nMachine: {machine_line()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    baseline = timings[0].median_s
    rows = [
        [
            t.name,
            f"{t.median_s:.3f}",
            f"{t.min_s:.3f}",
            f"{t.median_s - baseline:+.3f}",
            f"{t.median_no_pyc_s:.3f}" if t.median_no_pyc_s is not None else "-",
            str(t.exit_code),
        ]
        for t in timings
    ]
    columns = (
        "command",
        "median s",
        "min s",
        "over baseline s",
        "PYTHONDONTWRITEBYTECODE=1 median s",
        "exit",
    )
    print_table("Start-up wall time", columns, rows, markdown=markdown)
    print_verdict(timings, target_s)
    for report in imports:
        print_imports(report, markdown)


def print_verdict(timings: Sequence[Timing], target_s: float) -> None:
    help_timing = next((t for t in timings if t.name == "assay --help"), None)
    if help_timing is None:
        return
    if help_timing.exit_code != 0:
        print(f"\n`assay --help` FAILED (exit {help_timing.exit_code}); see the import report")
        return
    verdict = "MEETS" if help_timing.median_s < target_s else "MISSES"
    print(
        f"\n`assay --help` median {help_timing.median_s:.3f} s: {verdict} the {target_s:g} s "
        f"target (with PYTHONDONTWRITEBYTECODE=1: {help_timing.median_no_pyc_s or 0:.3f} s)"
    )


def print_imports(report: ImportReport, markdown: bool) -> None:
    name = f"`{report.command}`"
    if report.failure:
        print(f"\n{name} under -X importtime failed:\n{report.failure}")
    total_ms = _total_us(report.lines) / 1000
    rows = [
        [line.module, str(line.depth), f"{line.cumulative_us / 1000:.1f}"]
        for line in top_cumulative(report.lines)
    ]
    title = f"Top 10 imports of {name} by cumulative ms ({total_ms:.0f} ms of imports in all)"
    print_table(title, ("module", "depth", "cumulative ms"), rows, markdown=markdown)
    top_packages = list(report.packages.items())[:10]
    package_rows = [[package, f"{us / 1000:.1f}"] for package, us in top_packages]
    title = f"Top 10 packages imported by {name}, by own import time summed over their modules"
    print_table(title, ("package", "self ms"), package_rows, markdown=markdown)
    watched = [package for package in WATCHED if package in report.packages]
    print(f"\nWatched packages imported by {name}: {', '.join(watched) or 'none'}")


def write_json(
    path: Path, timings: Sequence[Timing], imports: Sequence[ImportReport], target_s: float
) -> None:
    payload = {
        "machine": machine_line(),
        "target_s": target_s,
        "timings": [asdict(t) for t in timings],
        "imports": {
            r.command: {
                "top_cumulative": [asdict(line) for line in top_cumulative(r.lines)],
                "package_self_us": r.packages,
                "failure": r.failure,
            }
            for r in imports
        },
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.startup")
    parser.add_argument("--repeat", type=int, default=10, help="runs per command (median)")
    parser.add_argument("--target", type=float, default=0.3, help="`assay --help` target, s")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    timings = measure_all(args.repeat)
    repeat = min(args.repeat, 5)
    imports = [import_report(cmd, cmd_args, repeat) for cmd, cmd_args in IMPORT_TARGETS.items()]
    print_report(timings, imports, args.target, args.markdown)
    if args.json is not None:
        write_json(args.json, timings, imports, args.target)


if __name__ == "__main__":
    main()
