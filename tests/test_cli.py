"""The real CLI, run in-process: help, inspect, prices, runs/show/compare, and bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from assay import __version__
from assay.data import demo_path, load_dataset
from assay.data.prompts import load_prompt
from assay.pricing import PriceTable
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import assay

DEMO_PROMPT = demo_path("sentiment_prompt.md")
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
EXPLANATION = "asks for exactly one word, so the label comes first"


def flat(text: str) -> str:
    """Collapse whitespace, so wrapped terminal output can be searched for a phrase."""
    return " ".join(text.split())


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The CLI's contract for errors: non-zero, one stderr line starting 'error:', no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def stored_runs(store: Path) -> list[str]:
    return [r.id for r in RunStore.open(store).list_runs(100)]


# --------------------------------------------------------------------------- help and version


def test_version() -> None:
    proc = assay("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"assay {__version__}"


def test_top_level_help_has_examples_of_both_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    proc = assay("--help")
    assert proc.returncode == 0
    out = flat(proc.stdout)
    assert "assay run reviews.jsonl prompt.md -m" in out
    assert "assay optimize reviews.jsonl prompt.md -m" in out
    for command in ("run", "optimize", "inspect", "prices", "runs", "show", "compare"):
        assert f"│ {command} " in proc.stdout


@pytest.mark.parametrize("command", ["run", "optimize"])
def test_command_help_mentions_resume_and_an_example(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    proc = assay(command, "--help")
    assert proc.returncode == 0
    out = flat(proc.stdout)
    assert "--resume" in out
    assert f"assay {command} --resume " in out  # the example of continuing a run
    assert f"assay {command} reviews.jsonl prompt.md -m local/smollm2" in out


# --------------------------------------------------------------------------- inspect


@dataclass(frozen=True)
class InspectFiles:
    jsonl: Path
    csv: Path
    label_free: Path
    template: Path


@pytest.fixture(scope="module")
def inspect_files(tmp_path_factory: pytest.TempPathFactory) -> InspectFiles:
    root = tmp_path_factory.mktemp("inspect")
    jsonl = small_dataset(root / "reviews.jsonl", 7)
    csv = root / "reviews.csv"
    csv.write_text('text,label\n"great film, loved it",positive\nawful,negative\nmeh,negative\n')
    label_free = root / "free.jsonl"
    label_free.write_text('{"text": "what a ride"}\n{"text": "so dull"}\n')
    template = root / "template.md"
    template.write_text("Review: {{text}}\nAnswer positive or negative.\n")
    return InspectFiles(jsonl, csv, label_free, template)


def inspect_json(*args: str) -> dict:  # type: ignore[type-arg]
    proc = assay("inspect", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_inspect_flat_jsonl_with_a_system_prompt(inspect_files: InspectFiles) -> None:
    rows = [json.loads(line) for line in inspect_files.jsonl.read_text().splitlines()]
    info = inspect_json(str(inspect_files.jsonl), str(DEMO_PROMPT))
    assert info["format"] == "flat"
    assert info["rows"] == len(rows)
    assert info["fields"] == list(rows[0])
    assert info["with_reference"] == len(rows) and info["label_free"] is False
    assert info["prompt_slots"] == []
    assert info["example_request"] == [
        {"role": "system", "content": load_prompt(DEMO_PROMPT).text},
        {"role": "user", "content": rows[0]["text"]},
    ]
    assert info["example_reference"] == rows[0]["label"]


def test_inspect_csv_with_a_template(inspect_files: InspectFiles) -> None:
    info = inspect_json(str(inspect_files.csv), str(inspect_files.template))
    assert info["format"] == "csv"
    assert info["rows"] == 3
    assert info["fields"] == ["text", "label"]
    assert info["with_reference"] == 3
    assert info["prompt_slots"] == ["text"]
    assert info["example_request"] == [
        {"role": "user", "content": "Review: great film, loved it\nAnswer positive or negative."}
    ]
    assert info["example_reference"] == "positive"


def test_inspect_label_free_data(inspect_files: InspectFiles) -> None:
    info = inspect_json(str(inspect_files.label_free))
    assert info["rows"] == 2 and info["fields"] == ["text"]
    assert info["with_reference"] == 0 and info["label_free"] is True
    assert info["example_request"] == [{"role": "user", "content": "what a ride"}]
    assert info["example_reference"] is None


def test_inspect_prints_the_request_a_human_can_read(
    inspect_files: InspectFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # nothing is called, so nothing is needed
    first = json.loads(inspect_files.jsonl.read_text().splitlines()[0])
    proc = assay("inspect", str(inspect_files.jsonl), str(DEMO_PROMPT))
    assert proc.returncode == 0, proc.stderr
    out = flat(proc.stdout)
    assert "format: flat" in out and "rows: 7" in out and "label_free: False" in out
    assert flat(load_prompt(DEMO_PROMPT).text) in out
    assert flat(first["text"]) in out
    assert f"reference: '{first['label']}'" in out
    free = assay("inspect", str(inspect_files.label_free))
    assert "label_free: True" in free.stdout and "reference: None" in free.stdout
    assert stored_runs(Path(os.environ["ASSAY_STORE"])) == []


# --------------------------------------------------------------------------- prices


def test_prices_json_lists_matches_with_source_and_date() -> None:
    proc = assay("prices", "gpt-4o-mini", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert entries, "the bundled table prices gpt-4o-mini"
    assert all("gpt-4o-mini" in e["model"] for e in entries)
    assert all(e["source"] and e["as_of"] for e in entries)
    by = {e["model"]: e for e in entries}
    bundled = PriceTable.bundled().get("openai/gpt-4o-mini")
    assert bundled is not None
    assert by["openai/gpt-4o-mini"]["input_per_mtok"] == bundled.input_per_mtok
    assert by["openai/gpt-4o-mini"]["output_per_mtok"] == bundled.output_per_mtok


def test_prices_file_overrides_are_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    override = tmp_path / "prices.yaml"
    override.write_text(
        "prices:\n"
        "  openai/gpt-4o-mini: {input_per_mtok: 9.5, output_per_mtok: 19, source: our contract,"
        " as_of: 2026-02-01}\n"
        "  compat/house-model: {input_per_mtok: 0.01, output_per_mtok: 0.02}\n"
    )
    proc = assay("prices", "gpt-4o-mini", "--prices", str(override), "--json")
    assert proc.returncode == 0, proc.stderr
    by = {e["model"]: e for e in json.loads(proc.stdout)}
    assert by["openai/gpt-4o-mini"] == {
        "model": "openai/gpt-4o-mini",
        "input_per_mtok": 9.5,
        "output_per_mtok": 19.0,
        "source": "our contract",
        "as_of": "2026-02-01",
        "batch_discount": 0.5,  # OpenAI's batch discount stays under a contract price
    }
    # Other bundled entries are untouched.
    bundled = PriceTable.bundled().get("openrouter/openai/gpt-4o-mini")
    assert bundled is not None
    assert by["openrouter/openai/gpt-4o-mini"]["input_per_mtok"] == bundled.input_per_mtok
    added = json.loads(assay("prices", "house", "--prices", str(override), "--json").stdout)
    assert [(e["model"], e["source"]) for e in added] == [("compat/house-model", str(override))]
    table = assay("prices", "gpt-4o-mini", "--prices", str(override))
    assert table.returncode == 0
    assert "9.50" in table.stdout and "19.00" in table.stdout and "our contract" in table.stdout


def test_prices_without_a_match_says_how_to_add_one() -> None:
    proc = assay("prices", "no-such-model-xyz")
    assert proc.returncode == 0
    assert "No model matches" in flat(proc.stdout) and "--prices" in proc.stdout
    assert json.loads(assay("prices", "no-such-model-xyz", "--json").stdout) == []


# --------------------------------------------------------------------------- runs, show, compare


@dataclass
class BenchRuns:
    store: Path
    data: Path
    a: dict  # type: ignore[type-arg]
    b: dict  # type: ignore[type-arg]
    other: dict  # type: ignore[type-arg]
    zoo: OptimizeZoo


def run_json(srv: ScriptedServer, store: Path, data: Path, prompt: Path) -> dict:  # type: ignore[type-arg]
    proc = assay(
        "run",
        str(data),
        str(prompt),
        "-m",
        "compat/task",
        "--base-url",
        srv.base_url,
        "--metric",
        "label",
        "--store",
        str(store),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def bench_runs(tmp_path_factory: pytest.TempPathFactory) -> BenchRuns:
    """Three runs: prompts A (with MAGIC) and B (without) on one dataset, A on another."""
    root = tmp_path_factory.mktemp("bench")
    store = root / "store"
    data = small_dataset(root / "reviews.jsonl", 40)
    other = small_dataset(root / "fewer.jsonl", 20)
    prompt_a = root / "prompt_a.md"
    prompt_a.write_text(f"Classify the sentiment of the review. {MAGIC}: positive or negative.\n")
    prompt_b = root / "prompt_b.md"
    prompt_b.write_text("Classify the sentiment of the review as positive or negative.\n")
    zoo = OptimizeZoo(["unused"])
    with ScriptedServer(zoo) as srv:
        a = run_json(srv, store, data, prompt_a)
        b = run_json(srv, store, data, prompt_b)
        c = run_json(srv, store, other, prompt_a)
    return BenchRuns(store, data, a, b, c, zoo)


def test_runs_json_lists_every_run_newest_first(bench_runs: BenchRuns) -> None:
    proc = assay("runs", "--store", str(bench_runs.store), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    runs = [bench_runs.other, bench_runs.b, bench_runs.a]
    assert [r["id"] for r in rows] == [r["run_id"] for r in runs]
    assert {(r["kind"], r["status"], r["models"]) for r in rows} == {
        ("run", "complete", "compat/task")
    }
    assert [r["data"] for r in rows] == [r["dataset"]["path"] for r in runs]
    limited = json.loads(
        assay("runs", "--store", str(bench_runs.store), "--limit", "1", "--json").stdout
    )
    assert [r["id"] for r in limited] == [bench_runs.other["run_id"]]


def test_show_json_reproduces_the_run_report(bench_runs: BenchRuns) -> None:
    run_id = bench_runs.a["run_id"]
    proc = assay("show", run_id[:-2], "--store", str(bench_runs.store), "--json")  # a prefix
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["run_id"] == run_id
    assert shown["variants"] == bench_runs.a["variants"]
    assert shown["dataset"] == bench_runs.a["dataset"]


def expected_failures(runs: BenchRuns, prompt_text: str) -> set[str]:
    """Which samples the zoo answered wrongly under this system prompt (from the zoo's own rule)."""
    ids = {s.input_text(): str(s.id) for s in load_dataset(runs.data).samples}
    wrong = set()
    for model, system, text in runs.zoo.log:
        if model == "task" and system == prompt_text and text in ids:
            answer = runs.zoo._answer(system, text).text  # type: ignore[attr-defined]
            if answer != runs.zoo.truth[text]:
                wrong.add(ids[text])
    return wrong


def test_show_samples_lists_every_response_and_failures_filters(
    bench_runs: BenchRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    run_id = bench_runs.b["run_id"]
    all_ids = {str(s.id) for s in load_dataset(bench_runs.data).samples}
    prompt_b = load_prompt(bench_runs.store.parent / "prompt_b.md").text
    wrong = expected_failures(bench_runs, prompt_b)
    assert wrong and wrong != all_ids  # prompt B is right on some rows and wrong on others
    proc = assay("show", run_id, "--store", str(bench_runs.store), "--samples")
    assert proc.returncode == 0, proc.stderr
    assert "Responses" in proc.stdout
    assert {i for i in all_ids if f"│ {i} " in proc.stdout} == all_ids
    failures = assay("show", run_id, "--store", str(bench_runs.store), "--samples", "--failures")
    assert failures.returncode == 0, failures.stderr
    assert {i for i in all_ids if f"│ {i} " in failures.stdout} == wrong


def test_compare_runs_with_two_prompts(bench_runs: BenchRuns) -> None:
    a, b = bench_runs.a, bench_runs.b
    proc = assay("compare", a["run_id"], b["run_id"], "--store", str(bench_runs.store), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    c = result["comparison"]
    mean_a = a["variants"][0]["score"]["mean"]
    mean_b = b["variants"][0]["score"]["mean"]
    assert (result["run_a"], result["run_b"], result["metric"]) == (
        a["run_id"],
        b["run_id"],
        "label",
    )
    assert c["n"] == a["dataset"]["n_samples"] == 40
    assert (c["mean_a"], c["mean_b"]) == pytest.approx((mean_a, mean_b))
    assert c["diff"] == pytest.approx(mean_b - mean_a)
    assert c["diff"] < 0  # B dropped "Answer with exactly one word", which the zoo rewards
    assert c["ci_low"] <= c["diff"] <= c["ci_high"] < 0 and c["significant"] is True
    reverse = assay("compare", b["run_id"], a["run_id"], "--store", str(bench_runs.store), "--json")
    assert json.loads(reverse.stdout)["comparison"]["diff"] == pytest.approx(mean_a - mean_b)


def test_compare_prints_one_readable_sentence(
    bench_runs: BenchRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    a, b = bench_runs.a, bench_runs.b
    proc = assay("compare", a["run_id"], b["run_id"], "--store", str(bench_runs.store))
    assert proc.returncode == 0, proc.stderr
    diff = b["variants"][0]["score"]["mean"] - a["variants"][0]["score"]["mean"]
    out = flat(proc.stdout)
    assert "on 40 paired samples" in out and f"diff {diff:+.3f}" in out
    assert "a significant change" in out


def test_compare_on_different_datasets_fails_in_one_line(bench_runs: BenchRuns) -> None:
    proc = assay(
        "compare",
        bench_runs.a["run_id"],
        bench_runs.other["run_id"],
        "--store",
        str(bench_runs.store),
    )
    line = one_error_line(proc)
    assert "different datasets" in line


# --------------------------------------------------------------------------- show an optimize run


@pytest.fixture(scope="module")
def optimize_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("optimize")
    store = root / "store"
    data = small_dataset(root / "reviews.jsonl", 120)  # val 24 rows: the gain clears the bar
    zoo = OptimizeZoo([proposal(GOOD, explanation=EXPLANATION)])
    with ScriptedServer(zoo) as srv:
        proc = assay(
            "optimize",
            str(data),
            str(DEMO_PROMPT),
            "-m",
            "compat/task",
            "--base-url",
            srv.base_url,
            "--reasoning-model",
            "compat/reasoner",
            "--reasoning-base-url",
            srv.base_url,
            "--metric",
            "label",
            "--batch-size",
            "8",
            "--strategy",
            "iterative",
            "--max-iterations",
            "1",
            "--store",
            str(store),
            "--json",
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["accepted"] == 1 and result["best_prompt"] == GOOD
    return store, result


def test_show_optimize_run_prints_trajectory_explanation_and_diff(
    optimize_run: tuple[Path, dict],  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, result = optimize_run
    monkeypatch.setenv("COLUMNS", "80")  # an ordinary terminal: long prompt lines must still show
    proc = assay("show", result["run_id"], "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Trajectory" in out
    assert [line.split()[:2] for line in out.splitlines() if line.strip()[:2] in ("0 ", "1 ")] == [
        ["0", "baseline"],
        ["1", "accepted"],
    ]
    assert out.splitlines()[0] == result["headline"]  # did the gain hold on test, first
    base, final = result["baseline"], result["final"]
    assert re.search(
        rf"starting prompt +{base['val']['mean']:.3f} +{base['test']['mean']:.3f} ", out
    )
    assert re.search(rf"best prompt +{final['val']['mean']:.3f} +{final['test']['mean']:.3f} ", out)
    assert "Iteration 1: accepted" in out
    assert "Diagnosis: answers ramble" in out
    assert f"Change: {EXPLANATION}" in flat(out)
    assert "--- parent" in out and "+++ candidate" in out
    original = load_prompt(DEMO_PROMPT).text
    assert flat(f"-{original}") in flat(out)
    assert flat(f"+{GOOD}") in flat(out)


def test_show_optimize_run_json_is_the_result(optimize_run: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    store, result = optimize_run
    proc = assay("show", result["run_id"], "--store", str(store), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == result


# --------------------------------------------------------------------------- bad input


@dataclass(frozen=True)
class Inputs:
    root: Path
    data: Path
    bad_jsonl: Path
    prompt: Path
    slot_prompt: Path
    rubric: Path
    base_url: str

    def compat(self) -> list[str]:
        return ["-m", "compat/task", "--base-url", self.base_url, "--metric", "label"]


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(OptimizeZoo(["unused"])) as srv:
        yield srv


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, server: ScriptedServer) -> Inputs:
    root = tmp_path_factory.mktemp("bad")
    (root / "a_folder").mkdir()
    data = small_dataset(root / "reviews.jsonl", 6)
    bad = root / "broken.jsonl"
    bad.write_text('{"text": "fine", "label": "positive"}\n{"text": "oops", "label": \n')
    prompt = root / "prompt.md"
    prompt.write_text("Classify the sentiment: positive or negative.\n")
    slot = root / "slot.md"
    slot.write_text("Review: {{review_body}}\n")
    rubric = root / "rubric.md"
    rubric.write_text("Score 1-5 for correctness.\n")
    return Inputs(root, data, bad, prompt, slot, rubric, server.base_url)


Build = Callable[[Inputs], list[str]]


def case(name: str, build: Build, expected: list[str]) -> object:
    return pytest.param(build, expected, id=name)


BAD_INPUT = [
    case(
        "missing-data-file",
        lambda f: ["run", str(f.root / "nope.jsonl"), str(f.prompt), *f.compat()],
        ["nope.jsonl", "not found"],
    ),
    case(
        "directory-as-data",
        lambda f: ["run", str(f.root / "a_folder"), str(f.prompt), *f.compat()],
        ["a_folder", "directory"],
    ),
    case(
        "malformed-jsonl-line",
        lambda f: ["run", str(f.bad_jsonl), str(f.prompt), *f.compat()],
        ["broken.jsonl:2", "JSON"],
    ),
    case(
        "missing-prompt-file",
        lambda f: ["run", str(f.data), str(f.root / "nope.md"), *f.compat()],
        ["nope.md", "not found"],
    ),
    case(
        "slot-without-field",
        lambda f: ["run", str(f.data), str(f.slot_prompt), *f.compat()],
        ["{{review_body}}", "text"],
    ),
    case(
        "unknown-provider",
        lambda f: ["run", str(f.data), str(f.prompt), "-m", "foo/bar", "--metric", "label"],
        ["Unknown provider 'foo'", "compat/MODEL"],
    ),
    case(
        "missing-api-key",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "-m",
            "openai/gpt-4o-mini",
            "--metric",
            "label",
        ],
        ["OPENAI_API_KEY", "openai/gpt-4o-mini"],
    ),
    case(
        "unreadable-rubric",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            *f.compat(),
            "--judge",
            "compat/judge",
            "--judge-base-url",
            f.base_url,
            "--judge-criteria",
            str(f.root / "no_rubric.md"),
        ],
        ["no_rubric.md", "--judge-criteria"],
    ),
    case(
        "rubric-is-a-directory",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            *f.compat(),
            "--judge",
            "compat/judge",
            "--judge-base-url",
            f.base_url,
            "--judge-criteria",
            str(f.root / "a_folder"),
        ],
        ["rubric", "a_folder"],
    ),
    case(
        "invalid-metric",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "-m",
            "compat/task",
            "--base-url",
            f.base_url,
            "--metric",
            "accuracyy",
        ],
        ["unknown metric 'accuracyy'", "label"],
    ),
    case(
        "judge-without-criteria",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            *f.compat(),
            "--judge",
            "compat/judge",
            "--judge-base-url",
            f.base_url,
        ],
        ["--judge", "--judge-criteria"],
    ),
    case(
        "criteria-without-judge",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            *f.compat(),
            "--judge-criteria",
            str(f.rubric),
        ],
        ["--judge-criteria needs --judge"],
    ),
    case(
        "unwritable-output",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            *f.compat(),
            "-o",
            "/nonexistent/dir/x.json",
        ],
        ["/nonexistent/dir/x.json", "does not exist"],
    ),
    case(
        "negative-max-cost",
        lambda f: ["run", str(f.data), str(f.prompt), *f.compat(), "--max-cost", "-1"],
        ["--max-cost"],
    ),
    case(
        "split-not-summing-to-one",
        lambda f: ["optimize", str(f.data), str(f.prompt), *f.compat(), "--split", "0.5,0.5,0.5"],
        ["--split '0.5,0.5,0.5'", "e.g. --split"],
    ),
    case(
        "optimize-two-models",
        lambda f: [
            "optimize",
            str(f.data),
            str(f.prompt),
            "-m",
            "compat/task",
            "-m",
            "compat/other",
            "--base-url",
            f.base_url,
            "--metric",
            "label",
        ],
        ["one -m", "--per-model"],
    ),
    case(
        "optimize-unwritable-output",
        lambda f: ["optimize", str(f.data), str(f.prompt), *f.compat(), "-o", "/nonexistent/b.md"],
        ["/nonexistent/b.md"],
    ),
    case(
        "run-resume-unknown-id",
        lambda f: ["run", "--resume", "20990101-000000-abcdef"],
        ["20990101-000000-abcdef", "assay runs"],
    ),
    case(
        "optimize-resume-unknown-id",
        lambda f: ["optimize", "--resume", "20990101-000000-abcdef"],
        ["20990101-000000-abcdef", "assay runs"],
    ),
    case("show-without-a-store", lambda f: ["show", "no-such-run"], ["No run store", "assay runs"]),
    case(
        "config-file-missing",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "--config",
            str(f.root / "models.yaml"),
            "--metric",
            "label",
        ],
        ["models.yaml", "models config"],
    ),
    case(
        "two-models-one-label",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "-m",
            "compat/task",
            "-m",
            "compat/task",
            "--base-url",
            f.base_url,
            "--metric",
            "label",
        ],
        ["share the label"],
    ),
    case("run-without-inputs", lambda f: ["run"], ["DATA and PROMPT", "--demo"]),
    case(
        "nothing-to-score-with",
        lambda f: [
            "run",
            str(f.data),
            str(f.prompt),
            "-m",
            "compat/task",
            "--base-url",
            f.base_url,
        ],
        ["--metric", "--judge"],
    ),
]


@pytest.mark.parametrize(("build", "expected"), BAD_INPUT)
def test_bad_input_fails_in_one_line_and_writes_nothing(
    build: Build,
    expected: list[str],
    inputs: Inputs,
    server: ScriptedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    calls_before = server.count
    proc = assay(*build(inputs))
    line = one_error_line(proc)
    for part in expected:
        assert part in line, line
    assert server.count == calls_before  # failed before any model call
    assert stored_runs(Path(os.environ["ASSAY_STORE"])) == []
    assert not Path("/nonexistent").exists()


def test_bad_input_leaves_the_runs_list_empty() -> None:
    proc = assay("run", "nope.jsonl", "nope.md", "-m", "foo/bar", "--metric", "label")
    one_error_line(proc)
    runs = assay("runs", "--json")
    assert runs.returncode == 0 and json.loads(runs.stdout) == []


def test_a_failed_resume_leaves_the_existing_runs_as_they_were(bench_runs: BenchRuns) -> None:
    """Where runs exist already, a failing command adds none and changes none."""
    store = RunStore.open(bench_runs.store)
    run_id = bench_runs.a["run_id"]
    before = [(r.id, r.status) for r in store.list_runs(100)]
    n_results = len(store.results(run_id))
    proc = assay(
        "run", "--resume", run_id, "--store", str(bench_runs.store), "-o", "/nonexistent/x.json"
    )
    assert "/nonexistent/x.json" in one_error_line(proc)
    after = RunStore.open(bench_runs.store)
    assert [(r.id, r.status) for r in after.list_runs(100)] == before
    assert len(after.results(run_id)) == n_results


def test_debug_shows_the_traceback(inputs: Inputs) -> None:
    proc = assay(
        "--debug", "run", str(inputs.root / "nope.jsonl"), str(inputs.prompt), *inputs.compat()
    )
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert "DataError" in proc.stderr and "nope.jsonl" in proc.stderr
