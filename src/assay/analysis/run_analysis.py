"""A benchmark run's report, computed from the run store alone, so that ``assay run``, ``show``,
``report`` and the dashboard print the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from assay.analysis.baseline import ReferenceTally, baseline_note, with_note
from assay.analysis.compare import DecisionSetup, PrimaryValues, decide
from assay.analysis.decisions import DecisionConfig
from assay.analysis.results import DatasetInfo, RunReport
from assay.analysis.summary import (
    SUMMARY_DETAILS,
    VariantSummary,
    VariantTally,
    self_hosting_cost_per_1k,
)
from assay.records import EndpointUse, merge_endpoint_use
from assay.store.run_record import StoredRun, StoredVariant
from assay.store.runstore import RunStore


def analyse(
    store: RunStore, run_id: str, status: str | None = None, stopped: str | None = None
) -> RunReport:
    """Everything reported is computed from the store, so show/compare/report agree."""
    run = store.get_run(run_id)
    stored = run.config
    primary = stored.primary_metric
    tallies, collected, references = tally(store, run.id, stored.variants, primary)
    summaries = _summaries(stored, tallies)
    values = {s.variant: collected.of(s.variant) for s in summaries}
    decision = decide(summaries, values, _setup(stored))
    baseline = references.baseline()
    report = RunReport(
        run_id=run.id,
        status=status or run.status,
        stopped_reason=stopped or (run.summary or {}).get("stopped_reason"),
        dataset=DatasetInfo(
            path=stored.data,
            sha256=stored.dataset_sha256,
            n_samples=stored.n_samples or 0,
            has_reference=stored.dataset_has_reference,
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
        judge_cost_usd=_total([s.judge_cost_usd for s in summaries]),
        total_cost_usd=_total([s.total_cost_usd for s in summaries]),
        spent_usd=_total([s.spent_usd for s in summaries]),
        endpoints=stored_endpoint_use(run.summary),
        shard=stored.shard,
        merged_from=stored.merged_from,
    )
    return report.from_store(store.path.parent)


def stored_endpoint_use(summary: dict[str, Any] | None) -> list[EndpointUse]:
    """The per-endpoint counts kept with a run's summary (none for runs made before them)."""
    try:
        return [EndpointUse.model_validate(e) for e in (summary or {}).get("endpoints", [])]
    except (ValidationError, TypeError):
        return []


def save_endpoint_use(store: RunStore, run_id: str, session: list[EndpointUse]) -> None:
    """Add this session's per-endpoint counts to those the run's summary keeps (a run's or an
    optimize run's); done as the session ends, however it ends (an interrupted one too),
    while the run is still held."""
    summary = store.get_run(run_id).summary or {}
    merged = merge_endpoint_use(stored_endpoint_use(summary), session)
    endpoints = [use.model_dump(mode="json") for use in merged]
    store.set_status(run_id, "running", {**summary, "endpoints": endpoints})


def tally(
    store: RunStore, run_id: str, variants: Sequence[StoredVariant], primary: str
) -> tuple[dict[str, VariantTally], PrimaryValues, ReferenceTally]:
    """One pass over the run's results: each row is folded into its variant's figures,
    paired values and reference labels, then dropped, so memory follows the numbers kept,
    not the records."""
    tallies = {v.key: VariantTally() for v in variants}
    values = PrimaryValues(primary)
    references = ReferenceTally()
    for row in store.result_rows(run_id, detail_keys=SUMMARY_DETAILS):
        variant_tally = tallies.get(row.variant)
        if variant_tally is None:  # not a variant of the run's config: not reported
            continue
        variant_tally.add(row)
        values.add(row)
        references.add(row)
    return tallies, values, references


def _setup(stored: StoredRun) -> DecisionSetup:
    """The run's own decision settings (runs stored before margins existed: the defaults)."""
    return DecisionSetup(
        config=DecisionConfig.model_validate(stored.job.get("decision") or {}),
        seed=stored.seed,
        n_samples=stored.n_samples or 0,
        repeats=stored.repeats,
    )


def _summaries(stored: StoredRun, tallies: dict[str, VariantTally]) -> list[VariantSummary]:
    out = []
    for v in stored.variants:
        summary = tallies[v.key].summary(v.key, v.model, stored.primary_metric, stored.seed)
        if v.batch:
            summary.batch_discount = v.batch_discount
        if stored.gpu_cost_per_hour is not None and v.model.startswith("local/"):
            summary.self_hosting_cost_per_1k_usd = self_hosting_cost_per_1k(
                summary, stored.gpu_cost_per_hour, stored.local_parallel
            )
        out.append(summary)
    return out


def _total(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)
