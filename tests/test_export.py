"""Per-sample export through the CLI: ``assay export`` (CSV, JSONL, Parquet), ``assay show
--samples --json``, ``RunReport.to_pandas()``, the missing-extra errors and the clobber checks.

The runs are real runs of the CLI against a scripted server: ``good`` always answers right,
``flaky`` is wrong on every third sample and its requests for sample 4 fail, the judge grades
5 when the response holds the reference and 2 otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assay.analysis.export import FIXED_COLUMNS, JUDGE_COLUMNS
from assay.analysis.results import RunReport
from assay.analysis.run_analysis import analyse
from assay.data import demo_path
from assay.records import Completion, Message, Request, Sample
from assay.scoring.score import Score
from assay.store.run_record import StoredRun, StoredVariant
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, error, reply
from tests.perf_helpers import markdown_table
from tests.run_helpers import assay, write_prices

N = 12
FLIP = {"positive": "negative", "negative": "positive"}
Record = dict[str, Any]


class Zoo:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.index = {r["text"]: int(r["id"]) for r in rows}
        self.truth = {r["text"]: r["label"] for r in rows}

    def __call__(self, request: ChatRequest) -> Action:
        if request.model == "judge":
            prompt = request.last_user_text
            good = _between(prompt, "reference") in _between(prompt, "response")
            why = "Names the reference." if good else "Wrong sentiment."
            return reply(f"{why}\nVERDICT: {5 if good else 2}", input_tokens=90, output_tokens=9)
        text = request.last_user_text
        i, truth = self.index[text], self.truth[text]
        if request.model == "flaky" and i == 4:
            return error(400, "scripted bad request")
        answer = FLIP[truth] if request.model == "flaky" and i % 3 == 0 else truth
        return reply(answer, input_tokens=30, output_tokens=2)


def _between(text: str, tag: str) -> str:
    found = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S)
    return found.group(1).strip() if found else "<none>"


@dataclass(frozen=True)
class Runs:
    root: Path
    store: Path
    data: Path
    prompt: Path
    judged: str  # judge + label + exact, two models, two repeats
    rerun: str  # the same command again: every response from the cache

    def export(self, *args: str) -> Any:
        return assay("export", *args, "--store", str(self.store))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("export")
    demo = [json.loads(line) for line in demo_path("sentiment.jsonl").read_text().splitlines()]
    rows = [{"id": i + 1, "text": r["text"], "label": r["label"]} for i, r in enumerate(demo[:N])]
    data = root / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompt = root / "prompt.md"
    prompt.write_text("Classify the sentiment: positive or negative.\n")
    rubric = root / "rubric.md"
    rubric.write_text("Is the sentiment right? Score 1-5.\n")
    prices = write_prices(root / "prices.json", {m: (1.0, 2.0) for m in ("good", "flaky", "judge")})
    store = root / "store"
    ids = []
    with ScriptedServer(Zoo(rows)) as srv:
        for _ in range(2):
            proc = assay(
                "run", str(data), str(prompt), "-m", "compat/good", "-m", "compat/flaky",
                "--base-url", srv.base_url, "--metric", "label", "--metric", "exact",
                "--judge", "compat/judge", "--judge-base-url", srv.base_url,
                "--judge-criteria", str(rubric), "--repeats", "2", "--prices", str(prices),
                "--store", str(store), "--json",
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            ids.append(json.loads(proc.stdout)["run_id"])
    return Runs(root, store, data, prompt, ids[0], ids[1])


def jsonl(runs: Runs, run_id: str, *args: str) -> list[Record]:
    proc = runs.export(run_id, "--format", "jsonl", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii()  # stdout JSONL is escaped: no control code reaches a terminal
    return [json.loads(line) for line in proc.stdout.splitlines()]


def shown(runs: Runs, run_id: str, *args: str) -> dict[str, Any]:
    proc = assay("show", run_id, "--store", str(runs.store), "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def means_by_variant(records: list[Record], column: str) -> dict[str, float]:
    values: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r[column] is not None:
            values[r["variant"]].append(float(r[column]))
    return {variant: sum(v) / len(v) for variant, v in values.items()}


def summary_means(report: dict[str, Any], metric: str) -> dict[str, float]:
    return {v["variant"]: v["metrics"][metric]["mean"] for v in report["variants"]}


EXPECTED_COLUMNS = [
    *(c.name for c in FIXED_COLUMNS),
    "score.judge", "score.judge.status", "score.judge.reason",
    "score.exact", "score.exact.status", "score.exact.reason", "score.exact.details",
    "score.label", "score.label.status", "score.label.reason", "score.label.details",
    *(c.name for c in JUDGE_COLUMNS),
]  # fmt: skip


# --------------------------------------------------------------------------- JSONL and values


def test_jsonl_has_one_record_per_sample_variant_and_repeat_in_natural_order(runs: Runs) -> None:
    records = jsonl(runs, runs.judged)
    assert [list(r) for r in records[:1]] == [EXPECTED_COLUMNS]
    keys = [(r["sample_id"], r["variant"], r["repeat"]) for r in records]
    assert keys == [
        (str(i), v, repeat)
        for i in range(1, N + 1)  # 1, 2, ..., 10, 11, 12: not 1, 10, 11, 12, 2
        for v in ("compat/flaky", "compat/good")
        for repeat in (0, 1)
    ]
    rows = {
        json.loads(line)["text"]: json.loads(line) for line in runs.data.read_text().splitlines()
    }
    for r in records:
        row = rows[r["input"]]  # the rendered request's input, without the system prompt
        assert (r["sample_id"], r["reference"]) == (str(row["id"]), row["label"])
        assert r["model"] == r["variant"]
        assert r["cached"] is (None if r["error_kind"] else False)  # no response: no flag


def test_exported_values_are_what_the_server_answered_and_the_judge_said(runs: Runs) -> None:
    for r in jsonl(runs, runs.judged):
        i, flaky = int(r["sample_id"]), r["variant"] == "compat/flaky"
        if flaky and i == 4:
            assert (r["response"], r["error_kind"], r["latency_s"], r["cost_usd"]) == (
                None, "bad_request", None, None,
            )  # fmt: skip
            assert "scripted bad request" in r["error"]
            assert (r["score.label"], r["score.label.status"], r["score.judge"]) == (
                None, "error", None,
            )  # fmt: skip
            continue
        right = not (flaky and i % 3 == 0)
        assert r["response"] == (r["reference"] if right else FLIP[r["reference"]])
        assert (r["error_kind"], r["input_tokens"], r["output_tokens"]) == (None, 30, 2)
        assert r["cost_usd"] == pytest.approx((30 * 1.0 + 2 * 2.0) / 1e6)
        assert r["latency_s"] > 0
        assert (r["score.label"], r["score.exact"]) == (float(right), float(right))
        assert r["score.label.details"]["expected"] == r["reference"]
        assert r["score.label.details"]["predicted"] == r["response"]
        assert r["score.judge"] == (1.0 if right else 0.25)  # 5 and 2 on a 1-5 scale
        assert r["judge.verdict"] == ("5" if right else "2")
        expected_why = "Names the reference." if right else "Wrong sentiment."
        assert r["judge.reasoning"] == expected_why
        assert r["judge.cost_usd"] == pytest.approx((90 * 1.0 + 9 * 2.0) / 1e6)


def test_export_means_equal_the_summary_of_show_json(runs: Runs) -> None:
    records = jsonl(runs, runs.judged)
    report = shown(runs, runs.judged)
    assert report["primary_metric"] == "judge"
    for metric in ("judge", "label", "exact"):
        exported = means_by_variant(records, f"score.{metric}")
        assert exported == pytest.approx(summary_means(report, metric), rel=1e-12)
    primary = {v["variant"]: v["score"]["mean"] for v in report["variants"]}
    assert means_by_variant(records, "score.judge") == pytest.approx(primary, rel=1e-12)


def test_a_rerun_from_the_cache_is_marked_cached(runs: Runs) -> None:
    records = jsonl(runs, runs.rerun)
    answered = [r for r in records if r["error_kind"] is None]
    assert answered and all(r["cached"] is True for r in answered)
    first = {
        (r["sample_id"], r["variant"], r["repeat"]): r["response"] for r in jsonl(runs, runs.judged)
    }
    assert {(r["sample_id"], r["variant"], r["repeat"]): r["response"] for r in records} == first


# --------------------------------------------------------------------------- CSV and Parquet


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def test_csv_file_holds_the_same_records_as_jsonl(runs: Runs) -> None:
    out = runs.root / "out.csv"
    proc = runs.export(runs.judged[:-2], "--format", "csv", "-o", str(out))  # an id prefix
    assert proc.returncode == 0, proc.stderr
    assert f"Wrote {4 * N} rows of run {runs.judged}" in proc.stdout
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == EXPECTED_COLUMNS
    records = jsonl(runs, runs.judged)
    assert rows == [{k: csv_cell(v) for k, v in r.items()} for r in records]
    as_numbers = [
        {**r, "score.label": float(r["score.label"]) if r["score.label"] else None} for r in rows
    ]
    report = shown(runs, runs.judged)
    assert means_by_variant(as_numbers, "score.label") == pytest.approx(
        summary_means(report, "label"), rel=1e-12
    )
    assert not [p for p in runs.root.iterdir() if p.name.endswith(".tmp")]  # renamed into place


def test_csv_on_stdout_and_format_from_the_suffix(runs: Runs) -> None:
    proc = runs.export(runs.judged)  # csv is the default on stdout
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 4 * N and list(rows[0]) == EXPECTED_COLUMNS
    out = runs.root / "by-suffix.jsonl"
    assert runs.export(runs.judged, "-o", str(out)).returncode == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == jsonl(runs, runs.judged)


def test_parquet_file_holds_the_same_records_as_jsonl(runs: Runs) -> None:
    import pyarrow.parquet as pq

    out = runs.root / "out.parquet"
    proc = runs.export(runs.judged, "--format", "parquet", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out)
    assert table.column_names == EXPECTED_COLUMNS
    assert str(table.schema.field("score.label").type) == "double"
    assert str(table.schema.field("input_tokens").type) == "int64"
    assert str(table.schema.field("cached").type) == "bool"
    details = [c for c in EXPECTED_COLUMNS if c.endswith(".details")]
    read = [
        {k: json.loads(v) if k in details and v is not None else v for k, v in row.items()}
        for row in table.to_pylist()
    ]
    assert read == jsonl(runs, runs.judged)


def test_parquet_needs_a_file(runs: Runs) -> None:
    proc = runs.export(runs.judged, "--format", "parquet")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "-o FILE.parquet" in proc.stderr


def test_unknown_format_is_one_error_line(runs: Runs) -> None:
    proc = runs.export(runs.judged, "--format", "xlsx")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "csv, jsonl or parquet" in proc.stderr


# --------------------------------------------------------------------------- show --samples --json


def test_show_samples_json_holds_the_jsonl_records(runs: Runs) -> None:
    report = shown(runs, runs.judged, "--samples")
    plain = shown(runs, runs.judged)
    assert {k: v for k, v in report.items() if k != "samples"} == plain
    assert report["samples"] == jsonl(runs, runs.judged)


def test_failures_filter_the_samples_as_they_filter_the_table(runs: Runs) -> None:
    records = jsonl(runs, runs.judged)
    failing = [r for r in records if r["score.judge"] is None or r["score.judge"] < 1]
    assert 0 < len(failing) < len(records)
    assert shown(runs, runs.judged, "--samples", "--failures")["samples"] == failing
    assert jsonl(runs, runs.judged, "--failures") == failing
    assert "samples" not in shown(runs, runs.judged, "--failures")  # without --samples: none


# --------------------------------------------------------------------------- pandas


def test_to_pandas_has_the_export_columns_and_the_summary_means(runs: Runs) -> None:
    report = analyse(RunStore.open(runs.store, create=False), runs.judged)
    frame = report.to_pandas()
    assert list(frame.columns) == EXPECTED_COLUMNS
    assert len(frame) == 4 * N
    assert list(frame["sample_id"][:4]) == ["1", "1", "1", "1"]
    means = frame.groupby("variant")["score.judge"].mean().to_dict()
    summary = {v.variant: v.score.mean if v.score else None for v in report.variants}
    assert means == pytest.approx(summary, rel=1e-12)
    assert str(frame["input_tokens"].dtype) == "Int64" and str(frame["cached"].dtype) == "boolean"
    # A report read back from JSON knows no store: pass it.
    parsed = RunReport.model_validate(shown(runs, runs.judged))
    again = parsed.to_pandas(store=runs.store)
    assert again["response"].tolist() == frame["response"].tolist()


def test_missing_pandas_is_an_import_error_naming_the_extra(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = analyse(RunStore.open(runs.store, create=False), runs.judged)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'assay[pandas]'")):
        report.to_pandas()


def test_missing_pyarrow_is_one_line_naming_the_extra(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    out = runs.root / "none.parquet"
    proc = runs.export(runs.judged, "-o", str(out))
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "pip install 'assay[parquet]'" in proc.stderr


# --------------------------------------------------------------------------- what is never written


def test_an_export_never_clobbers_an_input_or_the_store(runs: Runs) -> None:
    data_before, prompt_before = runs.data.read_bytes(), runs.prompt.read_bytes()
    for target, words in (
        (runs.data, "it is the input"),
        (runs.prompt, "it is the input"),
        (runs.store / "out.csv", "inside the run store"),
    ):
        proc = runs.export(runs.judged, "--format", "csv", "-o", str(target))
        assert proc.returncode == 2, target
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert (runs.data.read_bytes(), runs.prompt.read_bytes()) == (data_before, prompt_before)
    assert not (runs.store / "out.csv").exists()
    missing = runs.export(runs.judged, "-o", str(runs.root / "no-folder" / "x.csv"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


SECRET = "sk-test-0123456789abcdefSECRET"


def old_store_run(directory: Path) -> str:
    """A run written while the key was unknown (an older Assay): the text holds it as is."""
    store = RunStore.open(directory)
    record = StoredRun(
        kind="run", data=str(directory / "d.jsonl"), dataset_sha256="0" * 64,
        primary_metric="exact", models=["compat/m"],
        variants=[StoredVariant(key="m", model="compat/m")],
    )  # fmt: skip
    run_id = store.create_run(record)
    for i in (10, 2, 1):
        sample = Sample(id=f"s{i}", line=i, messages=(Message(role="user", content=f"q{i}"),))
        store.save_samples(run_id, [sample])
        store.save_result(
            ResultRecord(
                run_id=run_id, variant="m", sample_id=sample.id,
                request=Request(messages=sample.messages),
                completion=Completion(text=f"\x1b[2Jsays {SECRET}", latency_s=0.1),
                scores={"exact": Score.scored(0.0, "no exact match")},
            )
        )  # fmt: skip
    store.close()
    return run_id


def test_known_secrets_are_redacted_and_control_codes_escaped_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    store = tmp_path / "old"
    run_id = old_store_run(store)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # known now: every output redacts it
    printed = assay("export", run_id, "--store", str(store))
    assert printed.returncode == 0, printed.stderr
    assert SECRET not in printed.stdout and "***" in printed.stdout
    assert "\x1b" not in printed.stdout and "\\x1b[2J" in printed.stdout
    assert [r["sample_id"] for r in csv.DictReader(io.StringIO(printed.stdout))] == [
        "s1", "s2", "s10",
    ]  # fmt: skip
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"old.{fmt}"
        assert assay("export", run_id, "-o", str(out), "--store", str(store)).returncode == 0
        assert SECRET.encode() not in out.read_bytes()
    assert "\x1b[2J" in (tmp_path / "old.csv").read_text()  # a file keeps the exact text


# --------------------------------------------------------------------------- perf smoke


def test_export_memory_script_exports_every_row_of_each_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from perf import export_memory

    out = tmp_path / "export.json"
    assert export_memory.main(["--rows", "20,40", "--markdown", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    cells = [(r["rows"], r["format"]) for r in results]
    assert cells == [(n, f) for n in (20, 40) for f in ("csv", "jsonl", "parquet")]
    for r in results:
        assert r["rc"] == 0 and r["peak_rss_mib"] > 10 and r["file_mib"] > 0
        assert f"Wrote {r['rows']} rows" in r["stdout"]
        if r["format"] != "parquet":  # a header line in CSV, one line a row in JSONL
            assert r["lines"] == r["rows"] + (r["format"] == "csv")
    rows = markdown_table(capsys.readouterr().out, "assay export (whole process")
    assert [(row["rows"], row["format"]) for row in rows] == [(str(n), f) for n, f in cells]
    assert all(row["peak vs base"] == "1.00x" for row in rows[:3])  # the baseline: 20 rows


def test_a_failed_export_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    from assay.files import atomic_path

    out = tmp_path / "out.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("the store went away")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with atomic_path(out) as tmp:
        tmp.write_text("new\n")
    assert out.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
