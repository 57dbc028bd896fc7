"""``assay compare`` with optimize runs: their final (or starting) prompts, paired on the test
rows both runs held out, with the same statistic the optimizer reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assay.scoring.stats import paired_compare
from assay.store.runstore import RunStore
from tests.optimize_report_helpers import (
    OptRuns,
    build_optimize_runs,
    results_on_test,
    running_copy,
    value,
)
from tests.run_helpers import assay
from tests.test_cli import one_error_line


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> OptRuns:
    return build_optimize_runs(tmp_path_factory.mktemp("optimize-compare"))


@pytest.fixture(scope="module")
def store(runs: OptRuns) -> RunStore:
    return RunStore.open(runs.store_dir)


def compare(runs: OptRuns, *args: str) -> dict:  # type: ignore[type-arg]
    proc = assay("compare", *args, "--store", str(runs.store_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_two_optimize_runs_compare_their_final_prompts_on_shared_test_rows(
    runs: OptRuns, store: RunStore
) -> None:
    flat, improved = runs.flat, runs.improved
    got = compare(runs, flat.run_id, improved.run_id)
    a = results_on_test(store, flat.run_id, flat.final.prompt_hash)
    b = results_on_test(store, improved.run_id, improved.final.prompt_hash)
    ids = store.get_run(flat.run_id).config.split_ids("test")  # in split order, as the
    assert set(ids) == a.keys() == b.keys()  # optimizer pairs them; the same rows in both runs
    expected = paired_compare([value(a[i]) for i in ids], [value(b[i]) for i in ids])
    assert got["comparison"] == json.loads(expected.model_dump_json())
    assert (got["label_a"], got["label_b"]) == ("final prompt, compat/task",) * 2
    assert got["comparison"]["diff"] > 0 and got["scope"] == "test samples"


def test_starting_against_final_prompt_is_the_gain_the_optimizer_reported(
    runs: OptRuns,
) -> None:
    run = runs.improved.run_id
    got = compare(runs, run, run, "--variant-a", "baseline")
    assert got["comparison"] == json.loads(runs.improved.gain.model_dump_json())
    assert got["label_a"] == "starting prompt, compat/task"


def test_compare_prints_one_sentence_naming_the_prompts(
    runs: OptRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    proc = assay("compare", runs.flat.run_id, runs.improved.run_id, "--store", str(runs.store_dir))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"{runs.improved.run_id} (final prompt, compat/task) vs {runs.flat.run_id}" in out
    assert f"on {runs.improved.split.test} paired test samples" in out
    assert "variants []" not in out


def test_a_run_without_a_final_prompt_is_one_error_line(runs: OptRuns, store: RunStore) -> None:
    unfinished = running_copy(store, runs.improved.run_id, 2)
    proc = assay("compare", unfinished, runs.flat.run_id, "--store", str(runs.store_dir))
    line = one_error_line(proc)
    assert f"Optimize run {unfinished} has no final prompt yet (it is running)" in line
    assert "assay optimize --resume" in line


def test_an_unknown_prompt_name_is_one_error_line(runs: OptRuns, tmp_path: Path) -> None:
    proc = assay(
        "compare",
        runs.flat.run_id,
        runs.improved.run_id,
        "--variant-b",
        "best",
        "--store",
        str(runs.store_dir),
    )
    line = one_error_line(proc)
    assert "compared by its prompt, not 'best'" in line and "final" in line
