"""The streamed analysis of a run gives exactly the figures of the record-based one.

``analyse()`` folds the store's result rows one at a time into per-variant tallies. The oracle
here is the record-based computation it replaced (full ``ResultRecord``s from
``RunStore.results``, grouped by variant, summarised from lists), kept in this file only, run on
a store of a few hundred varied results: errors, unscored items, missing metrics, cache hits,
unknown task and judge costs, label details, several variants and repeats.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from assay.analysis.baseline import MajorityBaseline, baseline_note, with_note
from assay.analysis.compare import DecisionSetup, decide, primary_values
from assay.analysis.decisions import ItemKey
from assay.analysis.results import DatasetInfo, RunReport
from assay.analysis.run_analysis import analyse
from assay.analysis.runs_compare import compare_runs
from assay.analysis.summary import VariantSummary, self_hosting_cost_per_1k
from assay.benchmark.config import RunConfig
from assay.evaluation.config import ScoringConfig
from assay.records import Completion, Message, ModelConfig, Request
from assay.scoring.metrics import confusion_matrix
from assay.scoring.score import Score
from assay.scoring.scorer import JUDGE_SCORE
from assay.scoring.stats import aggregate, aggregate_values, paired_compare, percentile
from assay.store.run_record import StoredRun, StoredVariant
from assay.store.runstore import ResultRecord, RunStore

# --- a varied run ---------------------------------------------------------------------------

LABELS = ("positive", "negative", "neutral")
# variant -> model spec; "empty" has no results, "local/q" is priced by the hour
VARIANTS = {
    "clean": "compat/clean",
    "cached-unknown": "compat/cached-unknown",
    "unknown": "compat/unknown",
    "local": "local/q",
    "empty": "compat/empty",
}


def _model(spec: str) -> ModelConfig:
    provider, name = spec.split("/")
    return ModelConfig(spec=spec, provider=provider, model=name, label=name)


def _completion(variant: str, rng: random.Random) -> Completion:
    cached = rng.random() < 0.25
    cost: float | None = rng.uniform(0.0, 0.004)
    if variant == "local":
        cost = 0.0
    # "cached-unknown": unknown only on cache hits (spent is known, the task cost is not)
    if (variant == "cached-unknown" and cached) or (variant == "unknown" and rng.random() < 0.1):
        cost = None
    return Completion(
        text=rng.choice(LABELS) + " because " + "x" * rng.randrange(0, 200),
        input_tokens=rng.randrange(10, 500) if rng.random() < 0.9 else None,
        output_tokens=rng.randrange(1, 90) if rng.random() < 0.85 else None,
        latency_s=0.0 if rng.random() < 0.05 else rng.uniform(0.01, 3.0),
        cached=cached,
        cost_usd=cost,
    )


def _label_score(rng: random.Random) -> Score:
    if rng.random() < 0.1:
        return Score.unscored("no reference")
    expected = rng.choice(LABELS)
    predicted = rng.choice([*LABELS, None, "maybe"])
    value = 1.0 if predicted == expected else 0.0
    return Score.scored(value, f"predicted {predicted!r}", predicted=predicted, expected=expected)


def _judge_score(variant: str, rng: random.Random) -> Score:
    details: dict[str, Any] = {"judge": "compat/j", "raw_reply": "SCORE: 3 " * 20}
    roll = rng.random()
    if roll < 0.9:
        cost = None if variant == "unknown" and rng.random() < 0.05 else rng.uniform(0, 0.001)
        details["cost_usd"] = cost
    if roll < 0.08:  # a recorded cause, or a run from before causes (an error kind or none)
        why = rng.choice([{"unscored_cause": "no_verdict"}, {"error_kind": "context_length"}, {}])
        return Score.unscored("judge reply unparsable", **details, **why)
    return Score.scored(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]), "rubric", **details)


def _scores(variant: str, rng: random.Random) -> dict[str, Score]:
    scores = {"label": _label_score(rng), JUDGE_SCORE: _judge_score(variant, rng)}
    if rng.random() < 0.85:  # a metric missing on some results
        scores["exact"] = Score.scored(round(rng.random(), 3))
    return scores


def _result(
    run_id: str, variant: str, sample: str, repeat: int, rng: random.Random
) -> ResultRecord:
    request = Request(messages=(Message(role="user", content=f"text of {sample}"),), repeat=repeat)
    base = ResultRecord(
        run_id=run_id, variant=variant, sample_id=sample, repeat=repeat, request=request
    )
    if rng.random() < 0.1:
        failed = Score.error("request failed")
        return base.model_copy(
            update={
                "error_kind": "timeout",
                "error": "timed out",
                "scores": {"label": failed, JUDGE_SCORE: failed},
            }
        )
    return base.model_copy(
        update={"completion": _completion(variant, rng), "scores": _scores(variant, rng)}
    )


def build_run(store: RunStore, primary: str, seed: int = 11) -> str:
    config = RunConfig(
        data="data.jsonl",
        prompts=["prompt.md"],
        models=[_model(spec) for spec in VARIANTS.values()],
        scoring=ScoringConfig(metrics=["label", "exact"]),
        repeats=2,
        seed=seed,
        gpu_cost_per_hour=2.5,
    )
    run_id = store.create_run(
        StoredRun(
            kind="run",
            data=config.data,
            dataset_sha256="0" * 64,
            n_samples=50,
            primary_metric=primary,
            repeats=config.repeats,
            seed=config.seed,
            variants=[StoredVariant(key=k, model=m, prompt_hash="h") for k, m in VARIANTS.items()],
            gpu_cost_per_hour=config.gpu_cost_per_hour,
            local_parallel=config.engine.local_parallel,
            job=config.model_dump(mode="json"),
        )
    )
    rng = random.Random(seed)
    for variant in [*(k for k in VARIANTS if k != "empty"), "not-in-config"]:
        # each variant attempted an overlapping, not identical, set of items
        samples = [f"s{i:03d}" for i in range(50) if rng.random() < 0.9]
        for sample in samples:
            for repeat in range(2):
                store.save_result(_result(run_id, variant, sample, repeat, rng))
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.sqlite")


# --- the oracle: the record-based computation ----------------------------------------------


def _old_sum_cost(completions: Sequence[Completion]) -> float | None:
    if any(c.cost_usd is None for c in completions):
        return None
    return sum(c.cost_usd or 0.0 for c in completions)


def _old_judge_cost(results: Sequence[ResultRecord]) -> float | None:
    total = 0.0
    for r in results:
        judge = r.scores.get(JUDGE_SCORE)
        if judge is None or "cost_usd" not in judge.details:
            continue
        cost = judge.details["cost_usd"]
        if cost is None:
            return None
        total += float(cost)
    return total


def _old_confusion(results: Sequence[ResultRecord]) -> dict[str, dict[str, int]] | None:
    pairs = [
        (str(s.details["expected"]), s.details.get("predicted"))
        for r in results
        if (s := r.scores.get("label")) is not None and "expected" in s.details
    ]
    return confusion_matrix(pairs) if pairs else None


def _old_baseline(results: Sequence[ResultRecord], keys: set[str]) -> MajorityBaseline | None:
    """Each sample's first label reference in store order; the most common one's share."""
    first: dict[str, str] = {}
    for r in results:
        s = r.scores.get("label")
        if r.variant in keys and s is not None and "expected" in s.details:
            first.setdefault(r.sample_id, str(s.details["expected"]))
    if not first:
        return None
    counts = {label: list(first.values()).count(label) for label in sorted(set(first.values()))}
    top = max(counts, key=lambda label: counts[label])  # the first in sort order on a tie
    return MajorityBaseline(
        metric="label", answer=top, score=counts[top] / len(first), n=len(first)
    )


def _old_judge_unscored(results: Sequence[ResultRecord]) -> dict[str, int]:
    causes: Counter[str] = Counter()
    for r in results:
        judge = r.scores.get(JUDGE_SCORE)
        if judge is None or judge.status != "unscored":
            continue
        kind = judge.details.get("error_kind")
        legacy = (
            "context_overflow" if kind == "context_length" else "error" if kind else "unrecorded"
        )
        causes[judge.details.get("unscored_cause") or legacy] += 1
    return dict(sorted(causes.items(), key=lambda item: (-item[1], item[0])))


def _old_latency_and_tokens(completions: Sequence[Completion]) -> dict[str, Any]:
    measured = [c for c in completions if not c.cached]  # cache hits are not timed again
    latencies = [c.latency_s * 1000 for c in measured]
    out_tokens = [c.output_tokens for c in completions if c.output_tokens is not None]
    in_tokens = [c.input_tokens for c in completions if c.input_tokens is not None]
    timed = [c for c in measured if c.output_tokens is not None and c.latency_s > 0]
    total_time = sum(c.latency_s for c in timed)
    return {
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "latency_measured": len(latencies),
        "output_tokens_per_s": (
            sum(c.output_tokens or 0 for c in timed) / total_time if total_time else None
        ),
        "input_tokens_per_request": sum(in_tokens) / len(in_tokens) if in_tokens else None,
        "output_tokens_per_request": sum(out_tokens) / len(out_tokens) if out_tokens else None,
    }


def _old_summarise(
    variant: str, model_spec: str, results: Sequence[ResultRecord], primary: str, seed: int
) -> VariantSummary:
    completions = [r.completion for r in results if r.completion is not None]
    metric_names = sorted({name for r in results for name in r.scores})
    metrics = {
        name: aggregate([r.scores[name] for r in results if name in r.scores], seed=seed)
        for name in metric_names
    }
    task = _old_sum_cost(completions)
    judge = _old_judge_cost(results)
    return VariantSummary(
        variant=variant,
        model=model_spec,
        n_requests=len(results),
        n_errors=sum(1 for r in results if r.error_kind),
        score=metrics.get(primary),
        metrics=metrics,
        cost_per_1k_usd=None if task is None or not completions else task / len(completions) * 1000,
        task_cost_usd=task,
        spent_usd=_old_sum_cost([c for c in completions if not c.cached]),
        judge_cost_usd=judge,
        total_cost_usd=None if task is None or judge is None else task + judge,
        cached_requests=sum(1 for c in completions if c.cached),
        judge_unscored=_old_judge_unscored(results),
        confusion=_old_confusion(results),
        **_old_latency_and_tokens(completions),
    )


def _old_primary_values(results: Sequence[ResultRecord], primary: str) -> dict[ItemKey, Any]:
    values: dict[ItemKey, float | None] = {}
    for r in results:
        score = r.scores.get(primary)
        values[(r.sample_id, r.repeat)] = score.value if score and score.is_scored else None
    return values


def _old_total(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def old_analyse(store: RunStore, run_id: str) -> RunReport:
    run = store.get_run(run_id)
    config = RunConfig.model_validate(run.config.job)
    primary = run.config.primary_metric
    groups: dict[str, list[ResultRecord]] = defaultdict(list)
    for r in store.results(run_id):
        groups[r.variant].append(r)
    summaries = []
    for v in run.config.variants:
        summary = _old_summarise(v.key, v.model, groups[v.key], primary, config.seed)
        if config.gpu_cost_per_hour is not None and v.model.startswith("local/"):
            summary.self_hosting_cost_per_1k_usd = self_hosting_cost_per_1k(
                summary, config.gpu_cost_per_hour, config.engine.local_parallel
            )
        summaries.append(summary)
    values = {s.variant: _old_primary_values(groups[s.variant], primary) for s in summaries}
    setup = DecisionSetup(
        config=config.decision,
        seed=config.seed,
        n_samples=run.config.n_samples or 0,
        repeats=config.repeats,
    )
    decision = decide(summaries, values, setup)
    baseline = _old_baseline(store.results(run_id), {v.key for v in run.config.variants})
    return RunReport(
        run_id=run.id,
        status=run.status,
        stopped_reason=(run.summary or {}).get("stopped_reason"),
        dataset=DatasetInfo(
            path=config.data,
            sha256=run.config.dataset_sha256,
            n_samples=run.config.n_samples or 0,
            has_reference=run.config.dataset_has_reference,
        ),
        primary_metric=primary,
        variants=summaries,
        comparisons=decision.pairs,
        pareto_quality_cost=decision.pareto_cost,
        pareto_quality_latency=decision.pareto_latency,
        decisions=decision.decisions,
        recommendation=with_note(
            decision.recommendation, baseline_note(baseline, primary, summaries)
        ),
        majority_baseline=baseline,
        judge_cost_usd=_old_total([s.judge_cost_usd for s in summaries]),
        total_cost_usd=_old_total([s.total_cost_usd for s in summaries]),
        spent_usd=_old_total([s.spent_usd for s in summaries]),
    )


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("primary", ["label", JUDGE_SCORE, "exact"])
def test_streamed_analysis_equals_the_record_based_one(store: RunStore, primary: str) -> None:
    run_id = build_run(store, primary)
    streamed = analyse(store, run_id)
    assert streamed.model_dump() == old_analyse(store, run_id).model_dump()


def test_the_run_is_as_varied_as_intended(store: RunStore) -> None:
    """Guards the test above against a generator that stopped producing the hard cases."""
    report = analyse(store, build_run(store, "label"))
    by = {s.variant: s for s in report.variants}
    assert sum(s.n_requests for s in report.variants) > 300
    assert by["clean"].task_cost_usd is not None and by["clean"].n_errors > 0
    assert by["cached-unknown"].task_cost_usd is None
    assert by["cached-unknown"].spent_usd is not None
    assert by["unknown"].spent_usd is None and by["unknown"].judge_cost_usd is None
    assert by["local"].self_hosting_cost_per_1k_usd is not None
    assert by["empty"].n_requests == 0 and by["empty"].confusion is None
    confusion = by["clean"].confusion
    assert confusion is not None and "(no label)" in confusion["positive"]
    label = by["clean"].metrics["label"]
    assert label.n_unscored > 0 and label.n_errors > 0
    assert by["clean"].metrics["exact"].n_total < by["clean"].n_requests
    assert len(report.comparisons) == 10


def test_analysis_never_reads_full_records(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = build_run(store, "label")

    def refuse(self: RunStore, rid: str) -> list[ResultRecord]:
        raise AssertionError("analyse() read every result as a record")

    monkeypatch.setattr(RunStore, "results", refuse)
    assert analyse(store, run_id).variants


def test_result_rows_follow_the_records(store: RunStore) -> None:
    run_id = build_run(store, "label")
    records = store.results(run_id)
    rows = list(store.result_rows(run_id, detail_keys=("expected", "cost_usd")))
    assert [(r.variant, r.sample_id, r.repeat) for r in rows] == [r.key for r in records]
    for row, record in zip(rows, records, strict=True):
        assert row.error_kind == record.error_kind
        assert (row.completion is None) == (record.completion is None)
        if row.completion is not None and record.completion is not None:
            c = record.completion
            assert (row.completion.cost_usd, row.completion.cached) == (c.cost_usd, c.cached)
            assert row.completion.latency_s == c.latency_s
            assert row.completion.input_tokens == c.input_tokens
            assert row.completion.output_tokens == c.output_tokens
        assert row.scores.keys() == record.scores.keys()
        for name, score in record.scores.items():
            kept = {k: v for k, v in score.details.items() if k in ("expected", "cost_usd")}
            assert row.scores[name].value == score.value
            assert row.scores[name].status == score.status
            assert row.scores[name].details == kept
    one = list(store.result_rows(run_id, variant="local", detail_keys=("expected", "cost_usd")))
    assert one == [r for r in rows if r.variant == "local"]
    bare = list(store.result_rows(run_id, variant="local"))
    assert [r.scores.keys() for r in bare] == [r.scores.keys() for r in one]
    assert all(not s.details for r in bare for s in r.scores.values())


def test_result_rows_leave_the_store_usable_between_rows(store: RunStore) -> None:
    """The store's lock is taken per batch, not for the whole iteration."""
    run_id = build_run(store, "label")
    seen = 0
    for _row in store.result_rows(run_id):
        seen += 1
        assert store.get_run(run_id).id == run_id
    assert seen == len(store.results(run_id))


def test_compare_runs_pairs_the_same_values(store: RunStore) -> None:
    first, second = build_run(store, "label", seed=3), build_run(store, "label", seed=4)
    got = compare_runs(store, first, second, "clean", "unknown")
    a = _old_primary_values([r for r in store.results(first) if r.variant == "clean"], "label")
    b = _old_primary_values([r for r in store.results(second) if r.variant == "unknown"], "label")
    keys = sorted(set(a) & set(b))
    assert got.comparison == paired_compare([a[k] for k in keys], [b[k] for k in keys])
    rows = store.result_rows(first, variant="clean")
    assert primary_values(rows, "label") == a


def test_aggregate_values_equals_aggregate_of_scores() -> None:
    rng = random.Random(5)
    scores = [Score.scored(rng.random()) for _ in range(50)]
    scores += [Score.unscored("x")] * 3 + [Score.error("y")] * 2
    values = [s.value for s in scores if s.value is not None]
    assert aggregate_values(values, n_unscored=3, n_errors=2, seed=9) == aggregate(scores, seed=9)
