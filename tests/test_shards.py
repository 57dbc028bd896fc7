"""``assay run --shard i/n`` and ``assay merge``: one run split over stores (as over machines),
joined again, reports what one unsharded run reports."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assay.benchmark.config import RunConfig
from assay.data import demo_path, load_dataset
from assay.providers.specs import resolve_model
from assay.shards import Shard, shard_of
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.run_helpers import LabelZoo, assay, write_prices

SENTIMENT = str(demo_path("sentiment.jsonl"))
PROMPT = str(demo_path("sentiment_prompt.md"))
ROWS = 30

# What legitimately differs between the merged run and one unsharded run of the same config:
# the run's id, where it came from, and what was timed (each run measures its own latency).
RUN_FIELDS_THAT_DIFFER = ("run_id", "merged_from", "pareto_quality_latency")
VARIANT_FIELDS_THAT_DIFFER = (
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_mean_ms",
    "output_tokens_per_s",
)


@dataclass(frozen=True)
class Sharded:
    """One config run unsharded (its -o JSON) and as 3 shards, each in a store of its own."""

    whole: dict[str, Any]
    shard_ids: list[str]  # shard 1, 2, 3
    stores: list[Path]
    prices: Path


def run_args(base_url: str, prices: Path, store: Path, *extra: str) -> list[str]:
    return [
        "run",
        SENTIMENT,
        PROMPT,
        "-m",
        "compat/acc90",
        "-m",
        "compat/acc60",
        "--base-url",
        base_url,
        "--metric",
        "label",
        "--limit",
        str(ROWS),
        "--prices",
        str(prices),
        "--margin",
        "0.2",
        "--store",
        str(store),
        "--json",
        *extra,
    ]


def ok(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharded]:
    root = tmp_path_factory.mktemp("shards")
    prices = write_prices(root / "prices.json", {"acc90": (2.0, 8.0), "acc60": (0.2, 0.8)})
    stores = [root / f"machine{i}" / ".assay" for i in (1, 2, 3)]
    with ScriptedServer(LabelZoo()) as srv:
        out = root / "whole.json"
        ok(assay(*run_args(srv.base_url, prices, root / "whole", "-o", str(out))))
        ids = [
            ok(assay(*run_args(srv.base_url, prices, store, "--shard", f"{i}/3")))["run_id"]
            for i, store in enumerate(stores, start=1)
        ]
    yield Sharded(json.loads(out.read_text()), ids, stores, prices)


def merge(*args: str) -> subprocess.CompletedProcess[str]:
    return assay("merge", *args, "--json")


def from_stores(stores: list[Path]) -> list[str]:
    return [arg for store in stores for arg in ("--from", str(store))]


def without_timing(report: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in report.items() if k not in RUN_FIELDS_THAT_DIFFER}
    kept["variants"] = [
        {k: v for k, v in variant.items() if k not in VARIANT_FIELDS_THAT_DIFFER}
        for variant in report["variants"]
    ]
    return kept


def sample_ids(store: Path, run_id: str) -> set[str]:
    with closing(RunStore.open(store, create=False)) as reader:
        return set(reader.samples(run_id))


def test_merged_shards_report_what_one_unsharded_run_reports(
    sharded: Sharded, tmp_path: Path
) -> None:
    target = tmp_path / "merged"
    merged = ok(merge(*sharded.shard_ids, "--store", str(target), *from_stores(sharded.stores)))
    assert without_timing(merged) == without_timing(sharded.whole)
    assert merged["merged_from"] == sharded.shard_ids and merged["shard"] is None
    assert merged["dataset"]["n_samples"] == ROWS and merged["status"] == "complete"
    for variant in merged["variants"]:
        assert variant["n_requests"] == ROWS and variant["latency_measured"] == ROWS
    shown = ok(assay("show", merged["run_id"], "--store", str(target), "--json"))
    assert shown == merged  # the report is computed from the merged run's rows alone


def test_shards_are_disjoint_and_cover_every_row(sharded: Sharded) -> None:
    parts = [sample_ids(s, i) for s, i in zip(sharded.stores, sharded.shard_ids, strict=True)]
    assert all(parts) and sum(len(p) for p in parts) == ROWS
    assert set().union(*parts) == {s.id for s in load_dataset(SENTIMENT).iter_samples(ROWS)}
    for index, part in enumerate(parts, start=1):
        assert {shard_of(i, 0, 3) for i in part} == {index}
        with closing(RunStore.open(sharded.stores[index - 1], create=False)) as reader:
            run = reader.get_run(sharded.shard_ids[index - 1])
        assert run.config.shard is not None and str(run.config.shard) == f"{index}/3"
        assert run.config.n_samples == len(part) and run.config.shard.rows_all_shards == ROWS


def test_merged_run_in_a_shards_own_store_shows_and_reports(
    sharded: Sharded, tmp_path: Path
) -> None:
    """Merging into the store of one shard (machine 1 joins the others' stores)."""
    own = tmp_path / "machine1"
    shutil.copytree(sharded.stores[0], own)
    merged = ok(merge(*sharded.shard_ids, "--store", str(own), *from_stores(sharded.stores[1:])))
    shown = assay("show", merged["run_id"], "--store", str(own))
    assert shown.returncode == 0, shown.stderr
    assert f"Merged from 3 shard runs: {', '.join(sharded.shard_ids)}" in shown.stdout
    assert "compat/acc90" in shown.stdout and "Paired comparisons" in shown.stdout
    page = tmp_path / "report.html"
    report = assay("report", merged["run_id"], "--store", str(own), "-o", str(page))
    assert report.returncode == 0, report.stderr
    html = page.read_text(encoding="utf-8")
    assert "compat/acc60" in html and merged["run_id"] in html
    shard = assay("show", sharded.shard_ids[1], "--store", str(sharded.stores[1]))
    assert shard.returncode == 0, shard.stderr
    assert "Shard 2/3:" in shard.stdout and f"of the run's {ROWS} rows" in shard.stdout


def refused(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_duplicated_and_mismatched_shards_are_refused_in_one_line(
    sharded: Sharded, tmp_path: Path
) -> None:
    one, two, three = sharded.shard_ids
    other = tmp_path / "other"
    with ScriptedServer(LabelZoo()) as srv:  # another endpoint: that may differ
        changed = run_args(srv.base_url, sharded.prices, other, "--shard", "3/3")
        bad_three = ok(assay(*changed, "--temperature", "0.5"))["run_id"]
    target = tmp_path / "target"
    sources = from_stores([*sharded.stores, other])
    refused(merge(one, two, "--store", str(target), *sources), "missing 3/3")
    refused(
        merge(one, two, three, one, "--store", str(target), *sources),
        f"given more than once: 1/3 (runs {one}, {one})",
    )
    refused(merge(one, two, bad_three, "--store", str(target), *sources), "differ in params")
    refused(merge(one, "nosuchrun", "--store", str(target), *sources), "No run 'nosuchrun'")
    whole = sharded.whole["run_id"]
    wholes = from_stores([*sharded.stores, sharded.stores[0].parents[1] / "whole"])
    refused(merge(one, two, whole, "--store", str(target), *wholes), "is not a shard")
    assert not RunStore.exists(target)  # nothing was merged, nothing was created


def test_a_stopped_shard_resumes_then_merges_exactly(sharded: Sharded, tmp_path: Path) -> None:
    one, _, three = sharded.shard_ids
    store = tmp_path / "machine2"
    zoo = LabelZoo()
    with ScriptedServer(zoo) as srv:
        args = run_args(srv.base_url, sharded.prices, store, "--shard", "2/3")
        stopped = ok(assay(*args, "--max-cost", "0.003", "--concurrency", "1"))
        assert stopped["status"] == "stopped" and stopped["shard"]["index"] == 2
        target = tmp_path / "target"
        sources = from_stores([sharded.stores[0], store, sharded.stores[2]])
        refused(merge(one, stopped["run_id"], three, "--store", str(target), *sources), "stopped")
        again = assay("run", "--resume", stopped["run_id"], "--shard", "1/3", "--store", str(store))
        refused(again, "--shard")
        resumed = ok(assay("run", "--resume", stopped["run_id"], "--max-cost", "1", "--store",
                           str(store), "--json"))  # fmt: skip
    assert resumed["status"] == "complete" and resumed["shard"]["index"] == 2
    assert max(zoo.arrivals.values()) == 1  # no call of the stopped session was sent again
    assert sample_ids(store, resumed["run_id"]) == sample_ids(
        sharded.stores[1], sharded.shard_ids[1]
    )
    merged = ok(merge(one, resumed["run_id"], three, "--store", str(target), *sources))
    # This shard ran against another server: its calls count under that base URL.
    endpoints = merged.pop("endpoints")
    assert sum(e["requests"] for e in endpoints) == 2 * ROWS and len(endpoints) == 2
    whole = {k: v for k, v in sharded.whole.items() if k != "endpoints"}
    assert without_timing(merged) == without_timing(whole)


def test_shard_flag_and_config_errors(tmp_path: Path) -> None:
    base = [SENTIMENT, PROMPT, "-m", "compat/acc90", "--base-url", "http://127.0.0.1:9/v1"]
    for bad, says in (("4/3", "between 1 and 3"), ("two/3", "write it i/n"), ("1/0", "n must")):
        proc = assay("run", *base, "--metric", "label", "--shard", bad)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    adaptive = assay("run", *base, "--metric", "label", "--shard", "1/2", "--adaptive",
                     "--margin", "0.1")  # fmt: skip
    refused(adaptive, "--shard and --adaptive do not mix")
    config = RunConfig(
        data=SENTIMENT, prompts=[PROMPT], models=[resolve_model("local/smollm2")], shard="2/3"
    )
    assert config.shard == Shard(index=2, count=3)


def test_the_eval_file_names_a_shard_and_the_flag_overrides_it(tmp_path: Path) -> None:
    eval_file = tmp_path / "assay.yaml"
    eval_file.write_text(
        f"data: {SENTIMENT}\nprompts: [{PROMPT}]\nmetrics: [label]\nlimit: 12\nshard: 1/2\n"
        "models:\n  - spec: compat/acc90\n    base_url: BASE\n",
        encoding="utf-8",
    )
    with ScriptedServer(LabelZoo()) as srv:
        eval_file.write_text(eval_file.read_text().replace("BASE", srv.base_url))
        first = ok(assay("run", "--eval", str(eval_file), "--json"))
        second = ok(assay("run", "--eval", str(eval_file), "--shard", "2/2", "--json"))
    assert (first["shard"]["index"], second["shard"]["index"]) == (1, 2)
    rows = first["dataset"]["n_samples"] + second["dataset"]["n_samples"]
    assert rows == 12 and first["shard"]["rows_all_shards"] == 12
