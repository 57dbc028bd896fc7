"""Real optimize runs (the CLI against the scripted task and reasoning models) for the report,
dashboard and compare tests, and copies of them frozen mid-run for the live-progress tests."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from assay.data import demo_path
from assay.optimizer.records import IterationRecord, OptimizeResult
from assay.records import Spent
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import ScriptedServer
from tests.optimize_helpers import MAGIC, OptimizeZoo, optimize_args, proposal, small_dataset
from tests.run_helpers import assay

PROMPT = str(demo_path("sentiment_prompt.md"))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
BAD = "Tell a long story about the review."  # the zoo's task model fails with "long story"
XSS = "<script>window.__xss=5</script>"
MAX_CALLS = 2000
MAX_ITERATIONS = 3
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
PROMPT_KEY = re.compile(r"prompt:[0-9a-f]{16}")


@dataclass(frozen=True)
class OptRuns:
    store_dir: Path
    data: Path
    improved: OptimizeResult  # rewrite 1 accepted, rewrites 2 and 3 (the same text) rejected
    flat: OptimizeResult  # the same data and split, every rewrite rejected


def _optimize(plan: list[str], data: Path, store: Path, *extra: str) -> OptimizeResult:
    with ScriptedServer(OptimizeZoo(plan)) as srv:
        proc = assay(*optimize_args(srv, data, "--store", str(store), *extra))
    assert proc.returncode == 0, proc.stderr
    return OptimizeResult.model_validate(json.loads(proc.stdout))


def build_optimize_runs(directory: Path) -> OptRuns:
    data = small_dataset(directory / "reviews.jsonl", 60)
    store = directory / "store"
    budget = ("--max-iterations", str(MAX_ITERATIONS), "--max-calls", str(MAX_CALLS))
    plan = [proposal(GOOD, explanation=f"{XSS} say it in one word"), proposal(BAD)]
    improved = _optimize(plan, data, store, *budget)
    flat = _optimize([proposal(BAD)], data, store, "--max-iterations", "2")
    assert improved.accepted == 1 and improved.iterations == MAX_ITERATIONS
    assert [r.status for r in improved.trajectory[2:]] == ["rejected", "rejected"]
    assert improved.trajectory[2].prompt == improved.trajectory[3].prompt == BAD
    assert flat.accepted == 0
    return OptRuns(store, data, improved, flat)


# --- what the store says ----------------------------------------------------------------------


def results_on_test(store: RunStore, run_id: str, prompt_hash: str) -> dict[str, ResultRecord]:
    """The run's results for one prompt on its test split, by sample id."""
    test = set(store.get_run(run_id).config.split_ids("test"))
    key = f"prompt:{prompt_hash[:16]}"
    return {
        r.sample_id: r for r in store.results(run_id) if r.variant == key and r.sample_id in test
    }


def value(result: ResultRecord) -> float | None:
    score = result.scores.get("label")
    return score.value if score is not None and score.is_scored else None


def disagreeing_rows(store: RunStore, result: OptimizeResult) -> set[str]:
    base = results_on_test(store, result.run_id, result.baseline.prompt_hash)
    final = results_on_test(store, result.run_id, result.final.prompt_hash)
    return {i for i in base.keys() & final.keys() if value(base[i]) != value(final[i])}


def running_copy(store: RunStore, run_id: str, records: int, *, tested: bool = False) -> str:
    """A new run, still marked running, holding what ``run_id`` had written after its first
    ``records`` iteration records: their results (test rows only if ``tested``) and spend."""
    source = store.get_run(run_id)
    copy = store.create_run(source.config)
    kept = [IterationRecord.model_validate(r) for r in store.iterations(run_id)[:records]]
    for record in kept:
        store.save_iteration(copy, record.idx, record.model_dump())
    test = set(source.config.split_ids("test"))
    for result in store.results(run_id):
        if tested or result.sample_id not in test:
            store.save_result(result.model_copy(update={"run_id": copy}))
    calls = kept[-1].spend.calls if kept else 0
    store.save_spent(copy, Spent(calls=calls, cost_usd=0.0))
    return copy


def add_record(store: RunStore, source_id: str, copy_id: str, idx: int) -> IterationRecord:
    record = IterationRecord.model_validate(store.iterations(source_id)[idx])
    store.save_iteration(copy_id, idx, record.model_dump())
    store.save_spent(copy_id, Spent(calls=record.spend.calls, cost_usd=0.0))
    return record


# --- reading the page ---------------------------------------------------------------------------


def part(page: str, name: str) -> str:
    """The HTML of the ``<section data-part=NAME>`` card (cards are never nested)."""
    start = page.index(f'data-part="{name}"')
    return page[start : page.index("</section>", start)]


def text_of(markup: str) -> str:
    """What a reader sees: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup))).strip()


def between(markup: str, start: str, end: str) -> str:
    """From the end of the tag that holds ``start`` (an attribute) to the next ``end``."""
    i = markup.index(">", markup.index(start)) + 1
    return markup[i : markup.index(end, i)]


def attr_values(markup: str, name: str) -> list[str]:
    return re.findall(rf'{name}="([^"]*)"', markup)
