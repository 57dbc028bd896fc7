"""``--per-model``: a prompt optimized for each model under one shared budget, then compared.

Each model gets its own optimize run in the store, so each can be shown, reported and resumed
on its own (``assay optimize --resume RUN``), and an equal share of ``--max-calls`` and
``--max-cost``. The runs share the data, the split seed and the scoring, so their test rows are
the same rows: the comparison pairs each model's *own* best prompt on those rows, using what the
runs already measured there (no extra call), summarised and compared like ``assay run``.
The report's schema is ``assay.per_model/v1`` (see docs/strategies.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from assay.analysis.compare import DecisionSetup, PairRow, PrimaryValues, decide
from assay.analysis.decisions import ItemKey
from assay.analysis.results import DatasetInfo, RunReport
from assay.analysis.summary import SUMMARY_DETAILS, VariantSummary, VariantTally
from assay.data.prompts import PromptTemplate
from assay.engine.engine import Budget
from assay.evaluation.session import Session
from assay.optimizer import loop
from assay.optimizer.config import OptimizeConfig
from assay.optimizer.evaluate import variant_key
from assay.optimizer.records import OptimizeResult, Spend, SplitInfo
from assay.records import ModelConfig
from assay.scoring.stats import Aggregate, PairedComparison

PER_MODEL_SCHEMA = "assay.per_model/v1"


class ModelOutcome(BaseModel):
    """One model's optimization, in brief (the full result is its run's ``assay.optimize/v1``)."""

    label: str
    model: str
    run_id: str
    stopped_reason: str | None
    baseline_test: Aggregate
    final_test: Aggregate
    gain: PairedComparison
    best_prompt_hash: str
    best_prompt: str
    iterations: int
    accepted: int
    spend: Spend
    output: str | None = None  # where its best prompt was written


class PerModelReport(BaseModel):
    schema_version: str = Field(default=PER_MODEL_SCHEMA, alias="schema")
    dataset: DatasetInfo
    split: SplitInfo
    metric: str
    strategy: str
    budget_per_model: Budget
    models: list[ModelOutcome]
    variants: list[VariantSummary]  # each model with its own best prompt, on test
    comparisons: list[PairRow]
    pareto_quality_cost: list[str]
    pareto_quality_latency: list[str]
    recommendation: str
    spend: Spend

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def split_budget(budget: Budget, n: int) -> Budget:
    """An equal share for each of ``n`` models (calls rounded down: the total is never exceeded)."""
    return Budget(
        max_cost_usd=None if budget.max_cost_usd is None else budget.max_cost_usd / n,
        max_calls=None if budget.max_calls is None else budget.max_calls // n,
    )


def per_model_configs(
    config: OptimizeConfig, models: Sequence[ModelConfig]
) -> list[OptimizeConfig]:
    share = split_budget(config.budget, len(models))
    engine = config.engine.model_copy(update={"budget": share})
    return [config.model_copy(update={"model": m, "engine": engine}) for m in models]


def labels(configs: Sequence[OptimizeConfig]) -> list[str]:
    """Model labels, made unique (the same model twice, e.g. at two endpoints, gets #2)."""
    seen: dict[str, int] = {}
    out = []
    for cfg in configs:
        label = cfg.model.label
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def output_path(output: Path | None, label: str) -> Path | None:
    """``best.md`` -> ``best.<label>.md``: one file per model, each its own scored prompt."""
    if output is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"
    return output.with_name(f"{output.stem}.{safe}{output.suffix}")


def _on_test(
    session: Session, result: OptimizeResult, test_ids: set[str], label: str, seed: int
) -> tuple[VariantSummary, dict[ItemKey, float | None]]:
    """The best prompt's figures and primary values on the test rows, in one pass."""
    key = variant_key(PromptTemplate.from_text(result.best_prompt))
    tally, values = VariantTally(), PrimaryValues(result.metric)
    rows = session.store.result_rows(result.run_id, variant=key, detail_keys=SUMMARY_DETAILS)
    for row in rows:
        if row.sample_id in test_ids:
            tally.add(row)
            values.add(row)
    return tally.summary(label, result.model, result.metric, seed), values.of(key)


def compare_on_test(
    session: Session,
    prepared: loop.Prepared,
    results: Sequence[OptimizeResult],
    names: Sequence[str],
    output: Path | None = None,
) -> PerModelReport:
    """Each model with its own best prompt, on the shared test rows, compared pairwise."""
    test_ids = {s.id for s in prepared.split.test}
    seed = prepared.config.seed
    summaries, values = [], {}
    for name, result in zip(names, results, strict=True):
        summary, values[name] = _on_test(session, result, test_ids, name, seed)
        summaries.append(summary)
    decision = decide(summaries, values, DecisionSetup(seed=seed))
    first = results[0]
    return PerModelReport(
        dataset=DatasetInfo(
            path=first.data,
            sha256=first.dataset_sha256,
            n_samples=len(prepared.dataset.samples),
            has_reference=prepared.dataset.has_reference,
        ),
        split=first.split,
        metric=first.metric,
        strategy=first.strategy,
        budget_per_model=prepared.config.budget,
        models=[
            _outcome(n, r, output_path(output, n)) for n, r in zip(names, results, strict=True)
        ],
        variants=summaries,
        comparisons=decision.pairs,
        pareto_quality_cost=decision.pareto_cost,
        pareto_quality_latency=decision.pareto_latency,
        recommendation=decision.recommendation,
        spend=_total_spend([r.spend for r in results]),
    )


def _outcome(label: str, result: OptimizeResult, output: Path | None) -> ModelOutcome:
    return ModelOutcome(
        label=label,
        model=result.model,
        run_id=result.run_id,
        stopped_reason=result.stopped_reason,
        baseline_test=result.baseline.test,
        final_test=result.final.test,
        gain=result.gain,
        best_prompt_hash=result.final.prompt_hash,
        best_prompt=result.best_prompt,
        iterations=result.iterations,
        accepted=result.accepted,
        spend=result.spend,
        output=str(output) if output else None,
    )


def _total_spend(spends: Sequence[Spend]) -> Spend:
    return Spend(
        calls=sum(s.calls for s in spends),
        cached_calls=sum(s.cached_calls for s in spends),
        cost_usd=sum(s.cost_usd for s in spends),
        cost_known=all(s.cost_known for s in spends),
        reasoning_input_tokens=sum(s.reasoning_input_tokens for s in spends),
        reasoning_output_tokens=sum(s.reasoning_output_tokens for s in spends),
    )


def as_run_report(report: PerModelReport) -> RunReport:
    """The comparison in ``assay.run/v1`` form, for the tables ``assay run`` prints."""
    return RunReport(
        run_id=", ".join(m.run_id for m in report.models),
        status="complete",
        dataset=report.dataset,
        primary_metric=report.metric,
        variants=report.variants,
        comparisons=report.comparisons,
        pareto_quality_cost=report.pareto_quality_cost,
        pareto_quality_latency=report.pareto_quality_latency,
        recommendation=report.recommendation,
        judge_cost_usd=_sum_known([v.judge_cost_usd for v in report.variants]),
        total_cost_usd=_sum_known([v.total_cost_usd for v in report.variants]),
        spent_usd=report.spend.cost_usd if report.spend.cost_known else None,
    )


def _sum_known(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)
