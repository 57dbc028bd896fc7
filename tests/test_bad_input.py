"""A corpus of bad input, each through the real CLI.

The contract for every case: a non-zero exit, ONE line on stderr that starts with "error:" and
names the problem and the fix, no traceback, no model call, and nothing partial left behind
(no new run in the store, no output file).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from assay.data import demo_path
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.optimize_helpers import OptimizeZoo, small_dataset
from tests.run_helpers import LabelZoo, assay

PROMPT = demo_path("sentiment_prompt.md")


@dataclass(frozen=True)
class Files:
    root: Path
    data: Path
    label_free: Path
    prompt: Path
    rubric: Path
    url: str
    store: Path  # a store that already holds one finished run and one finished optimize
    run_id: str
    optimize_id: str
    changed: Path  # the data of run_id, since edited

    def task(self) -> list[str]:
        return ["-m", "compat/task", "--base-url", self.url, "--metric", "label"]

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    zoo = LabelZoo()
    with ScriptedServer(lambda r: zoo(r) if r.model != "reasoner" else OptimizeZoo([""])(r)) as srv:
        yield srv


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, server: ScriptedServer) -> Files:
    root = tmp_path_factory.mktemp("bad-input")
    data = small_dataset(root / "reviews.jsonl", 6)
    label_free = root / "free.jsonl"
    label_free.write_text('{"text": "what a ride"}\n{"text": "so dull"}\n{"text": "fine"}\n')
    prompt = root / "prompt.md"
    prompt.write_text("Classify the sentiment: positive or negative.\n")
    rubric = root / "rubric.md"
    rubric.write_text("Score 1-5 for correctness.\n")
    store = root / "store"
    changed = small_dataset(root / "changing.jsonl", 6)
    common = ["-m", "compat/task", "--base-url", server.base_url, "--metric", "label"]
    run = assay("run", str(changed), str(prompt), *common, "--store", str(store), "--json")
    assert run.returncode == 0, run.stderr
    changed.write_text(changed.read_text().replace("positive", "negative", 1))
    opt = assay(
        "optimize",
        str(small_dataset(root / "opt.jsonl", 30)),
        str(prompt),
        *common,
        "--max-iterations",
        "0",
        "--store",
        str(store),
        "--json",
    )
    assert opt.returncode == 0, opt.stderr
    return Files(
        root,
        data,
        label_free,
        prompt,
        rubric,
        server.base_url,
        store,
        json.loads(run.stdout)["run_id"],
        json.loads(opt.stdout)["run_id"],
        changed,
    )


Build = Callable[[Files], list[str]]


@dataclass(frozen=True)
class Case:
    build: Build
    expected: tuple[str, ...]  # each must appear in the error line
    output: str | None = None  # a file that must not exist afterwards


def case(name: str, build: Build, *expected: str, output: str | None = None) -> object:
    return pytest.param(Case(build, expected, output), id=name)


def run(f: Files, data: Path, *extra: str, prompt: Path | None = None) -> list[str]:
    return ["run", str(data), str(prompt or f.prompt), *f.task(), *extra]


def optimize(f: Files, data: Path, *extra: str) -> list[str]:
    return ["optimize", str(data), str(f.prompt), *f.task(), *extra]


def bare(f: Files, *args: str) -> list[str]:
    """``assay run DATA PROMPT`` with only ``args`` after it (no model, no metric)."""
    return ["run", str(f.data), str(f.prompt), *args]


GE0, GE1 = "greater than or equal to 0", "greater than or equal to 1"


def models_config(f: Files, name: str, text: str) -> Path:
    return f.write(name, text.replace("URL", f.url))


def metric_file(f: Files) -> Path:
    return f.write("m.py", "def other(sample, output):\n    return 1.0\n")


CASES = [
    # ------------------------------------------------------------------ datasets
    case(
        "jsonl-row-not-json",
        lambda f: run(f, f.write("a.jsonl", '{"text": "ok", "label": "positive"}\n{oops\n')),
        "a.jsonl:2",
        "invalid JSON",
        "one complete JSON object",
    ),
    case(
        "jsonl-row-is-a-list",
        lambda f: run(f, f.write("b.jsonl", '{"text": "ok", "label": "positive"}\n[1, 2]\n')),
        "b.jsonl:2",
        "got a list",
        "use {",
    ),
    case(
        "csv-unbalanced-quote",
        lambda f: run(f, f.write("c.csv", 'text,label\n"fine",positive\n"broken,negative\n')),
        "c.csv:3",
        "quote values",
    ),
    case(
        "csv-row-with-extra-columns",
        lambda f: run(f, f.write("d.csv", "text,label\nfine,positive\nbad,negative,extra,cols\n")),
        "d.csv:3",
        "4 values",
        "2 columns",
    ),
    case(
        "utf16-file",
        lambda f: run(
            f, f.write("u16.jsonl", '{"text": "ok", "label": "positive"}\n'.encode("utf-16"))
        ),
        "UTF-16",
        "UTF-8",
    ),
    case(
        "latin1-bytes",
        lambda f: run(
            f,
            f.write(
                "l1.jsonl",
                '{"text": "caf\u00e9 tr\u00e8s bon", "label": "positive"}\n'.encode("latin-1"),
            ),
        ),
        "l1.jsonl",
        "UTF-8",
    ),
    case(
        "empty-file",
        lambda f: run(f, f.write("empty.jsonl", "")),
        "empty.jsonl",
        "empty",
        "add one",
    ),
    case(
        "blank-lines-only",
        lambda f: run(f, f.write("blank.jsonl", "\n\n  \n")),
        "blank.jsonl",
        "blank",
        "add one",
    ),
    case(
        "row-missing-the-input-field",
        lambda f: run(
            f,
            f.write("m.jsonl", '{"text": "ok", "label": "positive"}\n{"label": "negative"}\n'),
        ),
        "m.jsonl:2",
        "fields in this row",
    ),
    case(
        "input-field-not-in-the-data",
        lambda f: run(f, f.data, "--input-field", "review_body"),
        "review_body",
        "fields in this row",
    ),
    case(
        "template-slot-with-no-field",
        lambda f: run(f, f.data, prompt=f.write("slot.md", "Review: {{body}}\nLabel it.\n")),
        "{{body}}",
        "fields available",
    ),
    # ------------------------------------------------------------------ models and keys
    case(
        "unknown-provider-in-models-config",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "--config",
            str(models_config(f, "m1.yaml", "models:\n  - spec: foo/bar\n")),
            "--metric",
            "label",
        ],
        "Unknown provider 'foo'",
        "m1.yaml",
        "use one of",
    ),
    case(
        "models-config-bad-key",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "--config",
            str(
                models_config(
                    f,
                    "m2.yaml",
                    "models:\n  - spec: compat/x\n    base_url: URL\n    colour: red\n",
                )
            ),
            "--metric",
            "label",
        ],
        "colour",
        "m2.yaml",
        "allowed keys: spec",
    ),
    case(
        "models-config-not-yaml",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "--config",
            str(f.write("m3.yaml", "models: [\n  - spec: {compat/x\n")),
            "--metric",
            "label",
        ],
        "m3.yaml",
        "not valid yaml",
    ),
    case(
        "custom-api-key-env-missing",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "--config",
            str(
                models_config(
                    f,
                    "m4.yaml",
                    "models:\n  - spec: compat/x\n    base_url: URL\n"
                    "    api_key_env: ASSAY_TEST_MISSING_KEY\n",
                )
            ),
            "--metric",
            "label",
        ],
        "set ASSAY_TEST_MISSING_KEY",
    ),
    case(
        "anthropic-key-missing",
        lambda f: bare(f, "-m", "anthropic/claude-haiku-4-5", "--metric", "label"),
        "set ANTHROPIC_API_KEY",
        "anthropic/claude-haiku-4-5",
    ),
    case(
        "judge-key-missing",
        lambda f: run(
            f, f.data, "--judge", "openai/gpt-4o-mini", "--judge-criteria", str(f.rubric)
        ),
        "set OPENAI_API_KEY",
    ),
    case(
        "compat-without-base-url",
        lambda f: ["run", str(f.data), str(f.prompt), "-m", "compat/x", "--metric", "label"],
        "compat/x",
        "--base-url",
    ),
    case(
        "local-gguf-missing",
        lambda f: bare(f, "-m", "local/missing.gguf", "--metric", "label"),
        "missing.gguf",
        "not found",
        "check the path",
    ),
    case(
        "local-model-with-base-url",
        lambda f: bare(f, "-m", "local/smollm2", "--base-url", f.url, "--metric", "label"),
        "local/smollm2",
        "compat/",
    ),
    case(
        "prices-negative",
        lambda f: run(
            f,
            f.data,
            "--prices",
            str(
                f.write(
                    "p.json",
                    '{"prices": {"compat/task": {"input_per_mtok": -1, "output_per_mtok": 2}}}',
                )
            ),
        ),
        "p.json",
        "input_per_mtok must be >= 0",
    ),
    case(
        "prices-file-missing",
        lambda f: run(f, f.data, "--prices", str(f.root / "nope-prices.json")),
        "nope-prices.json",
        "--prices",
    ),
    # ------------------------------------------------------------------ scoring
    case(
        "metric-name-typo",
        lambda f: run(f, f.data, "--metric", "rouge9"),
        "rouge9",
        "available:",
    ),
    case(
        "regex-metric-invalid",
        lambda f: run(f, f.data, "--metric", "regex:([a-z"),
        "invalid regex",
        "([a-z",
        "fix the pattern",
    ),
    case(
        "python-metric-file-missing",
        lambda f: run(f, f.data, "--metric", f"python:{f.root / 'nope.py'}:score"),
        "nope.py",
        "python:FILE.py:FUNCTION",
    ),
    case(
        "python-metric-function-missing",
        lambda f: run(f, f.data, "--metric", f"python:{metric_file(f)}:score"),
        "no function 'score'",
        "m.py",
        "functions found: other",
    ),
    case(
        "rubric-empty",
        lambda f: run(
            f,
            f.data,
            "--judge",
            "compat/judge",
            "--judge-base-url",
            f.url,
            "--judge-criteria",
            str(f.write("empty_rubric.md", "  \n")),
        ),
        "empty_rubric.md",
        "empty",
        "write what a good response",
    ),
    case(
        "rubric-not-utf8",
        lambda f: run(
            f,
            f.data,
            "--judge",
            "compat/judge",
            "--judge-base-url",
            f.url,
            "--judge-criteria",
            str(f.write("latin_rubric.md", "Tr\u00e8s bien = 5\n".encode("latin-1"))),
        ),
        "latin_rubric.md",
        "save it as UTF-8",
    ),
    case(
        "optimize-criteria-without-judge",
        lambda f: optimize(f, f.data, "--judge-criteria", str(f.rubric)),
        "--judge-criteria needs --judge",
    ),
    case(
        "optimize-label-metric-on-label-free-data",
        lambda f: optimize(f, f.label_free),
        "label",
        "--judge",
    ),
    case(
        "run-exact-metric-on-label-free-data",
        lambda f: run(f, f.label_free, "--metric", "exact"),
        "--judge",
    ),
    # ------------------------------------------------------------------ flags
    case("negative-budget", lambda f: run(f, f.data, "--max-cost", "-1"), "--max-cost", GE0),
    case("repeats-zero", lambda f: run(f, f.data, "--repeats", "0"), "--repeats", GE1),
    case("concurrency-zero", lambda f: run(f, f.data, "--concurrency", "0"), "--concurrency", GE1),
    case("timeout-zero", lambda f: run(f, f.data, "--timeout", "0"), "--timeout", GE1),
    case(
        "judge-repeats-zero",
        lambda f: run(f, f.data, "--judge-repeats", "0"),
        "--judge-repeats",
        GE1,
    ),
    case("limit-not-a-number", lambda f: run(f, f.data, "--limit", "ten"), "--limit", "integer"),
    case(
        "unknown-option",
        lambda f: run(f, f.data, "--concurency", "4"),
        "--concurency",
        "--concurrency",
    ),
    case(
        "split-not-summing-to-one",
        lambda f: optimize(f, f.data, "--split", "0.6,0.3,0.3"),
        "0.6,0.3,0.3",
        "--split 0.5,0.2,0.3",
    ),
    case(
        "split-not-numbers", lambda f: optimize(f, f.data, "--split", "half,some,rest"), "--split"
    ),
    case(
        "unknown-strategy",
        lambda f: optimize(f, f.data, "--strategy", "genetic"),
        "genetic",
        "iterative",
    ),
    case(
        "output-is-a-directory",
        lambda f: run(f, f.data, "-o", str(f.root)),
        "it is a directory",
        "give a file path",
    ),
    case(
        "output-folder-missing",
        lambda f: run(f, f.data, "-o", str(f.root / "no" / "such" / "r.json")),
        "does not exist",
        output="no/such/r.json",
    ),
    # ------------------------------------------------------------------ resume
    case(
        "resume-unknown-id",
        lambda f: ["run", "--resume", "19990101-000000-000000", "--store", str(f.store)],
        "19990101-000000-000000",
        "assay runs",
    ),
    case(
        "resume-data-changed",
        lambda f: ["run", "--resume", f.run_id, "--store", str(f.store)],
        "changing.jsonl",
        "changed",
    ),
    case(
        "run-resume-of-an-optimize-run",
        lambda f: ["run", "--resume", f.optimize_id, "--store", str(f.store)],
        "optimize",
        "assay optimize --resume",
    ),
    case(
        "optimize-resume-of-a-run",
        lambda f: ["optimize", "--resume", f.run_id, "--store", str(f.store)],
        "not an optimize run",
        "assay run --resume",
    ),
    case(
        "resume-with-bad-output",
        lambda f: ["run", "--resume", f.run_id, "--store", str(f.store), "-o", str(f.root)],
        "it is a directory",
        "give a file path",
    ),
]


def runs_in(store: Path) -> list[tuple[str, str]]:
    if not (store / "runs.sqlite").exists():
        return []
    return [(r.id, r.status) for r in RunStore.open(store).list_runs(1000)]


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_fails_in_one_line_and_writes_nothing(
    bad: Case, files: Files, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ASSAY_TEST_MISSING_KEY", "ASSAY_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "80")  # wrapping must not split the line
    store = Path(os.environ["ASSAY_STORE"])
    before_shared = runs_in(files.store)
    calls = server.count
    proc: subprocess.CompletedProcess[str] = assay(*bad.build(files))
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for part in bad.expected:
        assert part in line, line
    assert len(line) > len("error: ") + 20  # a sentence, not a bare code
    assert server.count == calls  # no model was called
    assert runs_in(store) == []  # no new run
    assert runs_in(files.store) == before_shared  # existing runs untouched
    if bad.output:
        assert not (files.root / bad.output).exists()


def test_debug_flag_shows_the_traceback_for_bad_input(files: Files) -> None:
    proc = assay(
        "--debug", "run", str(files.write("e.jsonl", "")), str(files.prompt), *files.task()
    )
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
