"""Output that survives a log file: full-width tables in a pipe, ids in natural order,
``optimize --limit``, cache hits said out loud (and not timed again), metric forms in --help."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from assay.cli.console import LOG_WIDTH, CliConsole
from assay.data import demo_path
from assay.optimizer.config import OptimizeConfig
from assay.report.data import load_view
from assay.report.samples import explorer_data
from assay.scoring.metrics import METRIC_KINDS
from assay.scoring.stats import percentile
from assay.store.runstore import RunStore
from assay.testing import ChatRequest, ScriptedServer, reply
from assay.text import natural_key, natural_sorted
from tests.optimize_helpers import small_dataset
from tests.run_helpers import LabelZoo, assay, assay_process

SENTIMENT = str(demo_path("sentiment.jsonl"))
PROMPTS = [str(demo_path("sentiment_prompt.md")), str(demo_path("sentiment_prompt_terse.md"))]
VARIANTS = [
    f"compat/{model} · {prompt}"
    for model in ("acc90", "acc60")
    for prompt in ("sentiment_prompt", "sentiment_prompt_terse")
]


def flat(text: str) -> str:
    return " ".join(text.split())


def zoo_run_args(srv: ScriptedServer, *extra: str) -> list[str]:
    return [
        "run",
        SENTIMENT,
        *PROMPTS,
        *["-m", "compat/acc90", "-m", "compat/acc60", "--base-url", srv.base_url],
        *["--metric", "label", "--limit", "6", *extra],
    ]


# --------------------------------------------------------------------------- full width


def assert_full_width(stdout: str) -> None:
    lines = stdout.splitlines()
    for variant in VARIANTS:  # each label whole, on one line
        assert any(variant in line for line in lines), (variant, stdout)
    header = next(i for i, line in enumerate(lines) if "model" in line and "uns/err" in line)
    assert "score" in lines[header - 1] and "tokens" in lines[header - 1]
    assert "[95% CI]" in lines[header] and "in/out" in lines[header]
    assert max(len(line.rstrip()) for line in lines) > 80


def test_a_piped_run_prints_tables_at_full_width(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay_process(
            *zoo_run_args(srv),
            env={"COLUMNS": None, "ASSAY_STORE": str(tmp_path / "store")},
        )
    assert proc.returncode == 0, proc.stderr
    assert_full_width(proc.stdout)
    assert "Plan for run" in proc.stderr and "compat/acc90 · sentiment_prompt_terse" in proc.stderr


def test_columns_of_a_non_terminal_do_not_cut_tables() -> None:
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay(*zoo_run_args(srv), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert_full_width(proc.stdout)


def test_a_terminal_keeps_its_width() -> None:
    terminal = CliConsole(file=io.StringIO(), force_terminal=True, width=60)
    log = CliConsole(file=io.StringIO(), force_terminal=False, width=60)
    assert (terminal.width, log.width) == (60, LOG_WIDTH)


# --------------------------------------------------------------------------- natural order


def test_natural_key_orders_numbers_by_value() -> None:
    ids = ["10", "2", "1", "100", "11", "q10", "q9", "a", "002"]
    assert natural_sorted(ids) == ["1", "002", "2", "10", "11", "100", "a", "q9", "q10"]
    assert natural_key("row-9") < natural_key("row-10")


def test_sample_ids_are_listed_in_natural_order(tmp_path: Path) -> None:
    ids = [str(n) for n in range(1, 13)]
    shuffled = random.Random(3).sample(ids, len(ids))
    data = tmp_path / "data.jsonl"
    rows = [{"id": i, "text": f"review {i}", "label": "positive"} for i in shuffled]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with ScriptedServer(lambda request: reply("positive")) as srv:
        proc = assay(
            "run", str(data), PROMPTS[0], "-m", "compat/m", "--base-url", srv.base_url,
            "--metric", "label", "--json",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    shown = assay("show", run_id, "--samples").stdout
    listed = [line.split("│")[1].strip() for line in shown.splitlines() if line.startswith("│")]
    assert [i for i in listed if i.isdigit()] == ids
    store = RunStore.open(tmp_path / "store")
    assert [row["id"] for row in explorer_data(load_view(store, run_id))["rows"]] == ids


# --------------------------------------------------------------------------- optimize --limit


def test_optimize_limit_uses_the_first_rows_only(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "reviews.jsonl", 60)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    seen: list[str] = []

    def handler(request: ChatRequest) -> object:
        seen.append(request.last_user_text)
        return reply("positive")

    with ScriptedServer(handler) as srv:  # type: ignore[arg-type]
        proc = assay(
            "optimize", str(data), PROMPTS[0], "-m", "compat/task", "--base-url", srv.base_url,
            "--metric", "label", "--limit", "20", "--max-iterations", "0", "--json",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    split = json.loads(proc.stdout)["split"]
    assert split["train"] + split["val"] + split["test"] == 20
    first = {r["text"] for r in rows[:20]}
    assert seen and set(seen) <= first
    run = RunStore.open(tmp_path / "store").list_runs(1)[0]
    assert OptimizeConfig.model_validate(run.config.job).limit == 20
    assert run.config.n_samples == 20


# --------------------------------------------------------------------------- cache hits


def test_cache_hits_are_counted_and_not_timed_again(tmp_path: Path) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        args = zoo_run_args(srv)[:-2]  # without --limit
        first = assay(*args, "--limit", "3", "--json")
        second = assay(*args, "--limit", "6")
        third = assay(*args, "--limit", "6", "-o", str(tmp_path / "third.json"))
    assert first.returncode == second.returncode == third.returncode == 0, second.stderr
    assert "24 responses, 12 from cache" in second.stdout
    assert "(12 cached, latency not re-measured)" in flat(second.stdout)
    assert "24 responses, 24 from cache" in third.stdout

    store = RunStore.open(tmp_path / "store")
    second_id = store.list_runs(3)[1].id
    report = json.loads(assay("show", second_id, "--json").stdout)
    results = store.results(second_id)
    for v in report["variants"]:
        measured = [
            r.completion.latency_s * 1000
            for r in results
            if r.variant == v["variant"] and r.completion and not r.completion.cached
        ]
        assert (v["cached_requests"], v["latency_measured"]) == (3, 3)
        assert v["latency_p50_ms"] == pytest.approx(percentile(measured, 50))
        assert v["latency_p95_ms"] == pytest.approx(percentile(measured, 95))
    all_cached = json.loads((tmp_path / "third.json").read_text())["variants"]
    assert all(v["latency_p50_ms"] is None and v["latency_measured"] == 0 for v in all_cached)
    assert all(v["output_tokens_per_s"] is None for v in all_cached)


# --------------------------------------------------------------------------- --help


@pytest.mark.parametrize("command", ["run", "optimize"])
def test_help_documents_every_metric_form(command: str) -> None:
    proc = assay(command, "--help", env={"COLUMNS": "200"})
    text = flat(proc.stdout)
    for kind in METRIC_KINDS.values():
        assert kind.usage in text
    for form in ("label:positive,negative", "rouge:rouge1", "bleu:char", "json-schema:schema.json"):
        assert f"--metric {form}" in text
    assert "--judge-max-tokens" in text and "--limit" in text
