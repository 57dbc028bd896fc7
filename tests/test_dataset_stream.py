"""A dataset is validated in one pass; its rows are kept from that pass when few
(``KeepRows``), else streamed: read again from the file on demand."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assay.benchmark.config import RunConfig
from assay.benchmark.plan import RunPlan, build_variants, estimate_judge, estimate_task
from assay.data import PromptTemplate, load_dataset
from assay.data.datasets import STREAM, KeepRows
from assay.errors import DataError
from assay.evaluation.config import ScoringConfig
from assay.pricing import PriceTable
from assay.providers.specs import resolve_model
from assay.records import Sample
from assay.scoring.metrics import build_metrics
from assay.store.run_record import StoredRun
from assay.store.runstore import RunStore


def jsonl(*rows: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def gpt(text: str) -> dict[str, str]:
    return {"from": "gpt", "value": text}


# One file per format, each with three rows; the references expected from each.
FILES: dict[str, tuple[str, list[str | None]]] = {
    "flat.jsonl": (
        "\n" + jsonl({"text": "a", "label": "x"}, {"text": "b"}, {"text": "c", "label": 3}),
        ["x", None, "3"],
    ),
    "messages.jsonl": (
        jsonl(
            {"messages": [user("a"), {"role": "assistant", "content": "x"}]},
            {"messages": [user("b")]},
            {"input": [user("c")], "ideal": "z"},
        ),
        ["x", None, "z"],
    ),
    "alpaca.jsonl": (
        jsonl(
            {"instruction": "a", "output": "x"},
            {"instruction": "b", "input": "more"},
            {"instruction": "c", "output": "z"},
        ),
        ["x", None, "z"],
    ),
    "sharegpt.jsonl": (
        jsonl(
            {"conversations": [{"from": "human", "value": "a"}, gpt("x")]},
            {"conversations": [{"from": "human", "value": "b"}]},
            {"conversations": [{"from": "human", "value": "c"}, gpt("z")]},
        ),
        ["x", None, "z"],
    ),
    "rows.csv": (
        'text,label\r\n"a, quoted",x\r\n"b\nover two lines",\r\n\r\nc,z\r\n',
        ["x", None, "z"],
    ),
    "rows.tsv": ("text\tlabel\na\tx\nb\t\nc\tz\n", ["x", None, "z"]),
    "rows.json": (
        '[\n  {"text": "a", "label": "x"},\n  {"text": "b"},\n  {"text": "c", "label": "z"}\n]',
        ["x", None, "z"],
    ),
}


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("keep", [KeepRows(), STREAM], ids=["kept", "streamed"])
@pytest.mark.parametrize("name", FILES)
def test_each_pass_reads_the_same_rows(tmp_path: Path, name: str, keep: KeepRows) -> None:
    content, references = FILES[name]
    path = write(tmp_path, name, content)
    ds = load_dataset(path, keep=keep)
    first, second = list(ds.iter_samples()), list(ds.iter_samples())
    assert first == second
    assert (ds.kept is None) == (keep == STREAM)
    assert first == list(load_dataset(path, keep=STREAM if ds.kept else KeepRows()).samples)
    assert [s.reference for s in first] == references
    assert (len(ds), ds.n_with_reference, ds.has_reference) == (3, 2, True)
    assert ds.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.samples == first


def test_loading_keeps_no_rows_past_its_limits(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl(*({"text": str(i)} for i in range(5))))
    assert load_dataset(path, keep=KeepRows(max_rows=4)).kept is None
    assert load_dataset(path, keep=KeepRows(max_bytes=30)).kept is None
    first_two = load_dataset(path, use_first=2, keep=KeepRows(max_rows=4)).kept
    assert [s.id for s in first_two or ()] == ["1", "2"]  # the rows a --limit 2 run uses
    assert [s.id for s in load_dataset(path, use_first=2).kept or ()] == list("12345")
    ds = load_dataset(path, keep=STREAM)
    assert [s.id for s in ds.iter_samples()] == ["1", "2", "3", "4", "5"]
    assert "samples" not in vars(ds)  # only the samples property materialises the list
    assert len(ds.samples) == 5
    assert "samples" in vars(ds)


def test_iter_samples_stops_at_the_limit(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "d.jsonl", jsonl(*({"text": str(i)} for i in range(5)))))
    assert [s.id for s in ds.iter_samples(limit=2)] == ["1", "2"]
    assert [s.id for s in ds.iter_samples(limit=9)] == ["1", "2", "3", "4", "5"]


def test_a_file_changed_after_loading_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"text": "a"}, {"text": "b"}))
    ds, kept = load_dataset(path, keep=STREAM), load_dataset(path)
    path.write_text(jsonl({"text": "a"}, {"text": "B"}), encoding="utf-8")
    with pytest.raises(DataError, match="the file changed since it was loaded"):
        list(ds.iter_samples())
    assert [s.messages[0].content for s in kept.iter_samples()] == ["a", "b"]  # as validated


def test_a_limit_as_large_as_the_file_still_checks_it(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"text": "a"}, {"text": "b"}))
    ds = load_dataset(path, keep=STREAM)
    path.write_text(jsonl({"text": "a"}, {"text": "B"}), encoding="utf-8")
    with pytest.raises(DataError, match="the file changed since it was loaded"):
        list(ds.iter_samples(limit=2))


def test_duplicate_ids_on_one_line_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '[{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]')
    with pytest.raises(DataError, match="duplicate id 'a' \\(first on line 1\\)"):
        load_dataset(path)


def test_csv_with_lone_carriage_returns_counts_lines_as_csv_does(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "d.csv", 'text,label\r"a\rb",x\rc,y\r'))
    assert [(s.line, s.messages[0].content, s.reference) for s in ds.samples] == [
        (2, "a\rb", "x"),
        (4, "c", "y"),
    ]


def test_the_first_bad_line_is_reported_whatever_its_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"text": "a"}, {"text": " "}) + "{bad\n")
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert info.value.line == 2
    assert "field 'text' is empty" in str(info.value)


def test_label_metric_reads_the_references_from_a_generator(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": "yes"}, {"text": "b", "label": "no"}, {"text": "c"}]
    ds = load_dataset(write(tmp_path, "d.jsonl", jsonl(*rows)))
    (metric,) = build_metrics(["label"], ds.iter_samples())
    sample = Sample(id="1", line=1, reference="no")
    assert metric(sample, "I'd say no").value == 1.0


def test_other_metrics_never_read_the_samples() -> None:
    def untouchable() -> Iterator[Sample]:
        raise AssertionError("read")
        yield  # pragma: no cover

    assert [m.name for m in build_metrics(["exact", "label:a,b"], untouchable())] == [
        "exact",
        "label",
    ]


def many_samples(n: int) -> Iterator[Sample]:
    for i in range(n):
        yield Sample(id=str(i), line=i + 1, reference="x" if i % 2 else None)


def test_save_samples_takes_a_generator_larger_than_a_batch(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path)
    run_id = store.create_run(
        StoredRun(kind="run", data="d.jsonl", dataset_sha256="0" * 64, primary_metric="exact")
    )
    store.save_samples(run_id, many_samples(2_500), {"7": "test"})
    saved = store.samples(run_id)
    assert len(saved) == 2_500
    assert saved["7"] == Sample(id="7", line=8, reference="x")


def test_plan_streams_its_rows_and_counts_them_up_front(tmp_path: Path) -> None:
    rows = [{"text": f"row {i}", "label": "x"} for i in range(5)]
    ds = load_dataset(write(tmp_path, "d.jsonl", jsonl(*rows)))
    models = [resolve_model(f"compat/{m}", base_url="http://127.0.0.1:9", label=m) for m in "ab"]
    config = RunConfig(
        data=ds.path,
        prompts=[],
        models=models,
        scoring=ScoringConfig(metrics=["exact"]),
        repeats=2,
        limit=3,
    )
    prompt = PromptTemplate.from_text("Say {{text}}")
    plan = RunPlan(
        config=config,
        dataset=ds,
        variants=build_variants(models, [prompt]),
        metrics=[],
        primary_metric="exact",
    )
    assert plan.n_samples == 3
    items = list(plan.items())
    assert len(items) == plan.n_items == 3 * 2 * 2
    assert [i.sample.id for i in items[:: 2 * 2]] == ["1", "2", "3"]  # sample-major
    estimates = estimate_task(plan, PriceTable({}))
    assert [e.calls for e in estimates] == [6, 6]
    assert estimates[0].input_tokens == len("Say row 0") * 3 * 2 // 4
    assert estimate_judge(plan, PriceTable({})) == []
