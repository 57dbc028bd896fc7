"""The CI gate of ``assay run``: --fail-under, --fail-if-worse-than, exit code 3, --junit and
--summary, through the CLI on the scripted model zoo."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from assay.analysis.gate import GATE_FAILED_EXIT
from assay.data import demo_path
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.run_helpers import LabelZoo, assay, write_prices

SENTIMENT = str(demo_path("sentiment.jsonl"))
PROMPT = str(demo_path("sentiment_prompt.md"))


def models_file(tmp_path: Path, srv: ScriptedServer, **labels: str) -> Path:
    """A models config: label -> the zoo model that answers under it."""
    path = tmp_path / f"models-{'-'.join(f'{k}.{v}' for k, v in labels.items())}.yaml"
    entries = "".join(
        f'  - {{spec: compat/{model}, label: {label}, base_url: "{srv.base_url}"}}\n'
        for label, model in labels.items()
    )
    path.write_text("models:\n" + entries)
    return path


def run(
    tmp_path: Path, srv: ScriptedServer, *args: str, limit: int = 60, **labels: str
) -> subprocess.CompletedProcess[str]:
    config = models_file(tmp_path, srv, **labels)
    return assay(
        "run", SENTIMENT, PROMPT, "--config", str(config), "--metric", "label",
        "--limit", str(limit), *args,
    )  # fmt: skip


def run_ids() -> list[str]:
    store = RunStore.open(os.environ["ASSAY_STORE"], create=False)
    try:
        return [r.id for r in store.list_runs()]
    finally:
        store.close()


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --------------------------------------------------------------------------- --fail-under


def test_fail_under_every_variant_must_reach_it(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        failing = run(tmp_path, srv, "--fail-under", "0.8", "-o", str(tmp_path / "r.json"),
                      good="acc90", weak="acc60")  # fmt: skip
        passing = run(tmp_path, srv, "--fail-under", "0.5", good="acc90", weak="acc60")
    listed = json.loads((tmp_path / "r.json").read_text())["variants"]
    means = {v["variant"]: v["score"]["mean"] for v in listed}
    assert means["good"] >= 0.8 > means["weak"] >= 0.5  # the zoo's accuracies, measured
    assert failing.returncode == GATE_FAILED_EXIT == 3
    line = error_line(failing.stderr)
    assert line.startswith("error: Gate failed: fail-under 0.8, weak: mean ")
    assert f"{means['weak']:.3f}" in line and "< 0.8" in line
    assert "Gate FAILED (exit code 3)" in failing.stdout
    assert "pass  fail-under 0.8 [good]" in failing.stdout  # the other variant passes
    assert passing.returncode == 0, passing.stderr
    assert "Gate passed" in passing.stdout


def test_no_gate_flag_prints_no_gate_and_exits_0(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        proc = run(tmp_path, srv, limit=5, weak="acc60")
    assert proc.returncode == 0 and "Gate" not in proc.stdout


# --------------------------------------------------------------------------- --fail-if-worse-than


def baseline_run(tmp_path: Path, srv: ScriptedServer) -> tuple[str, Path]:
    out = tmp_path / "baseline.json"
    proc = run(tmp_path, srv, "-o", str(out), prod="acc90")
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())["run_id"], out


def test_a_run_shown_worse_than_the_baseline_fails(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        run_id, out = baseline_run(tmp_path, srv)
        by_id = run(tmp_path, srv, "--fail-if-worse-than", run_id, prod="acc60")
        by_file = run(tmp_path, srv, "--fail-if-worse-than", str(out), prod="acc60")
    for proc in (by_id, by_file):
        assert proc.returncode == 3, proc.stderr
        line = error_line(proc.stderr)
        assert line.startswith(f"error: Gate failed: not worse than {run_id}, prod: baseline 0.")
        assert "worse by more than the margin 0" in line
        assert "interval [" in line and "n=60" in line  # the paired numbers, on 60 samples
    assert f"compared with baseline run {run_id}" in by_id.stdout
    assert f"compared with baseline run {run_id} ({out})" in by_file.stdout


def test_the_same_model_is_not_worse_and_a_wide_margin_passes(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        run_id, _ = baseline_run(tmp_path, srv)
        same = run(tmp_path, srv, "--fail-if-worse-than", run_id, "--no-cache", prod="acc90")
        within = run(tmp_path, srv, "--fail-if-worse-than", run_id, "--margin", "0.6",
                     prod="acc60")  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert "pass  not worse than" in same.stdout and "diff +0.000" in same.stdout
    # acc60 is ~0.3 worse: shown worse at margin 0, but not by more than 0.6
    assert within.returncode == 0, within.stderr
    assert "not shown worse by more than the margin 0.6" in within.stdout or (
        "not worse by more than the margin 0.6" in within.stdout
    )


def test_a_variant_with_no_baseline_counterpart_is_skipped(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    with ScriptedServer(LabelZoo()) as srv:
        run_id, _ = baseline_run(tmp_path, srv)
        proc = run(tmp_path, srv, "--fail-if-worse-than", run_id, "--junit", str(junit),
                   prod="acc90", newcomer="acc60")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "skip  not worse than" in proc.stdout and "no variant 'newcomer'" in proc.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "1"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown", "No run 'no-such-run'"),
        ("metric", "is scored by label, this run by exact"),
        ("data", "used other data"),
        ("labels", "has variants prod; this run has other"),
        ("file", "is not a results file of assay run"),
    ],
)
def test_a_baseline_that_cannot_be_compared_fails_before_any_call(
    tmp_path: Path, case: str, expected: str
) -> None:
    other_data = tmp_path / "other.jsonl"
    other_data.write_text('{"text": "fine", "label": "positive"}\n')
    not_results = tmp_path / "notes.json"
    not_results.write_text('{"hello": 1}')
    with ScriptedServer(LabelZoo()) as srv:
        run_id, _ = baseline_run(tmp_path, srv)
        before, calls = run_ids(), srv.count
        config = str(models_file(tmp_path, srv, prod="acc90"))
        data, metric, baseline = {
            "unknown": (SENTIMENT, "label", "no-such-run"),
            "metric": (SENTIMENT, "exact", run_id),
            "data": (str(other_data), "label", run_id),
            "labels": (SENTIMENT, "label", run_id),
            "file": (SENTIMENT, "label", str(not_results)),
        }[case]
        args = [data, PROMPT, "--metric", metric, "--fail-if-worse-than", baseline]
        if case == "labels":
            config = str(models_file(tmp_path, srv, other="acc90"))
        proc = assay("run", *args, "--config", config, "--limit", "5")
        assert srv.count == calls  # no model call
    assert proc.returncode == 2, proc.stderr
    assert expected in error_line(proc.stderr)
    assert run_ids() == before  # and no run recorded


# --------------------------------------------------------------------------- --junit, --summary


def test_junit_and_summary_hold_the_variants_the_checks_and_the_numbers(tmp_path: Path) -> None:
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    with ScriptedServer(LabelZoo()) as srv:
        run_id, _ = baseline_run(tmp_path, srv)
        proc = run(tmp_path, srv, "--fail-if-worse-than", run_id, "--fail-under", "0.8",
                   "--junit", str(junit), "--summary", str(summary), prod="acc60")  # fmt: skip
    assert proc.returncode == 3
    root = ET.parse(junit).getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert set(cases) == {
        ("assay.variants", "prod"),
        ("assay.gate", "run complete"),
        ("assay.gate", "fail-under 0.8: prod"),
        ("assay.gate", f"not worse than {run_id}: prod"),
    }
    assert root.get("failures") == "2"
    under = cases[("assay.gate", "fail-under 0.8: prod")].find("failure")
    assert under is not None and "< 0.8" in (under.get("message") or "")
    worse = cases[("assay.gate", f"not worse than {run_id}: prod")].find("failure")
    assert worse is not None and "worse by more than the margin 0" in (worse.get("message") or "")
    assert cases[("assay.gate", "run complete")].find("failure") is None
    variant_out = cases[("assay.variants", "prod")].findtext("system-out") or ""
    assert variant_out.startswith("label: 0.") and "60 / 0 / 0" in variant_out
    text = summary.read_text()
    assert f"## Assay run `{run_id}`" not in text  # the new run's id, not the baseline's
    assert "| variant | label (95% CI) |" in text and "\n| prod | 0." in text
    assert "**Gate **failed****" not in text and "**Gate failed**" in text
    assert text.count("**FAIL**") == 2 and "**Recommendation:**" in text


def test_a_passing_gate_writes_passing_files(tmp_path: Path) -> None:
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    with ScriptedServer(LabelZoo()) as srv:
        proc = run(tmp_path, srv, "--fail-under", "0.5", "--junit", str(junit),
                   "--summary", str(summary), limit=10, prod="acc90")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert "**Gate passed**" in summary.read_text()


def test_junit_and_summary_without_a_gate_still_report_the_run(tmp_path: Path) -> None:
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    with ScriptedServer(LabelZoo()) as srv:
        proc = run(tmp_path, srv, "--junit", str(junit), "--summary", str(summary),
                   limit=4, a="acc90", b="acc60")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert names == ["a", "b"]
    assert "Gate" not in summary.read_text() and "| a |" in summary.read_text()


def test_ci_outputs_are_checked_before_any_call(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(Path(SENTIMENT).read_text())
    with ScriptedServer(LabelZoo()) as srv:
        config = str(models_file(tmp_path, srv, prod="acc90"))
        base = ("run", str(data), PROMPT, "--config", config, "--metric", "label")
        clobber = assay(*base, "--junit", str(data))
        no_folder = assay(*base, "--summary", str(tmp_path / "missing" / "s.md"))
        twice = assay(*base, "--junit", str(tmp_path / "x"), "--summary", str(tmp_path / "x"))
        assert srv.count == 0
    assert clobber.returncode == 2 and "it is the input" in error_line(clobber.stderr)
    assert no_folder.returncode == 2 and "does not exist" in error_line(no_folder.stderr)
    assert twice.returncode == 2 and "Two outputs go to" in error_line(twice.stderr)
    assert data.read_text() == Path(SENTIMENT).read_text()


def test_json_output_stays_json_and_the_gate_goes_to_stderr(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        proc = run(tmp_path, srv, "--json", "--fail-under", "0.99", limit=10, prod="acc60")
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["variants"][0]["variant"] == "prod"
    assert "Gate FAILED" in proc.stderr


# --------------------------------------------------------------------------- gate in the file


def test_the_eval_file_gate_and_the_flags_over_it(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        _, out = baseline_run(tmp_path, srv)
        folder = tmp_path / "repo"
        folder.mkdir()
        (folder / "baseline.json").write_text(out.read_text())
        (folder / "assay.yaml").write_text(
            f"data: {SENTIMENT}\nprompts: [{PROMPT}]\nmetrics: [label]\nlimit: 60\n"
            f'models: [{{spec: compat/acc60, label: prod, base_url: "{srv.base_url}"}}]\n'
            "gate: {fail_under: 0.99, fail_if_worse_than: baseline.json}\n"
        )
        from_file = assay("run", cwd=folder)
        lowered = assay("run", "--fail-under", "0.1", cwd=folder)
        margin = assay("run", "--fail-under", "0.1", "--margin", "0.6", cwd=folder)
    assert from_file.returncode == 3
    assert "FAIL  fail-under 0.99 [prod]" in from_file.stdout
    # the flag replaces fail_under; the file's baseline (read from its folder) still fails it
    assert lowered.returncode == 3 and "pass  fail-under 0.1 [prod]" in lowered.stdout
    assert "FAIL  not worse than" in lowered.stdout
    assert margin.returncode == 0, margin.stdout


def test_a_run_stopped_by_its_budget_fails_the_gate(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        (tmp_path / "assay.yaml").write_text(
            f"data: {SENTIMENT}\nprompts: [{PROMPT}]\nmetrics: [label]\nlimit: 20\n"
            f'models: [{{spec: compat/acc90, label: prod, base_url: "{srv.base_url}"}}]\n'
            "budget: {max_calls: 5}\ngate: {fail_under: 0.1}\n"
        )
        proc = assay("run", cwd=tmp_path)
    assert proc.returncode == 3
    assert "Gate failed: run complete, status stopped" in error_line(proc.stderr)


def test_a_resumed_run_is_gated_too(tmp_path: Path) -> None:
    prices = write_prices(tmp_path / "prices.json", {"acc90": (2.0, 8.0)})
    out = tmp_path / "r.json"
    with ScriptedServer(LabelZoo()) as srv:
        common = ("--prices", str(prices), "-o", str(out))
        stopped = run(tmp_path, srv, *common, "--max-cost", "0.0003", limit=20, prod="acc90")
        run_id = json.loads(out.read_text())["run_id"]
        resumed = assay("run", "--resume", run_id, "--max-cost", "1", "--fail-under", "0.5",
                        *common)  # fmt: skip
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert resumed.returncode == 0, resumed.stderr
    assert "pass  run complete: status complete" in resumed.stdout
    assert "pass  fail-under 0.5 [prod]" in resumed.stdout
