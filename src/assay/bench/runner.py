"""The ``assay run`` orchestrator: prepare -> execute -> analyse, all recorded in the run store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assay.bench.compare import PrimaryValues, compare_pairs, decide
from assay.bench.config import RunConfig
from assay.bench.execute import NoProgress, ProgressSink, RunContext, execute
from assay.bench.plan import RunPlan, build_variants
from assay.bench.results import DatasetInfo, RunReport
from assay.bench.summary import (
    SUMMARY_DETAILS,
    VariantSummary,
    VariantTally,
    self_hosting_cost_per_1k,
)
from assay.data.datasets import load_dataset
from assay.data.prompts import load_prompt
from assay.engine.cache import ResponseCache
from assay.engine.engine import Engine
from assay.engine.pricing import PriceTable
from assay.errors import UserInputError
from assay.providers.specs import check_keys
from assay.scoring.metrics import build_metrics, check_metrics_against_dataset
from assay.scoring.scorer import JUDGE_SCORE, ResponseScorer
from assay.store.runstore import RunStore


@dataclass
class Services:
    """Where results go and what prices apply; built once by the CLI or the Python API."""

    store: RunStore
    prices: PriceTable
    cache: ResponseCache | None = None


def prepare(config: RunConfig) -> RunPlan:
    """Load and validate everything before any call: data, prompts, metrics, keys."""
    if not config.scoring.metrics and config.scoring.judge is None:
        raise UserInputError("Nothing to score with", "add --metric NAME or --judge SPEC")
    dataset = load_dataset(config.data, config.mapping)
    prompts = [load_prompt(p) for p in config.prompts]
    for prompt in prompts:
        prompt.check_slots(dataset)
    metrics = build_metrics(config.scoring.metrics, dataset.iter_samples())
    check_metrics_against_dataset(metrics, dataset.has_reference)
    judge_models = config.scoring.judge.models if config.scoring.judge else []
    check_keys([*config.models, *judge_models])
    return RunPlan(config=config, dataset=dataset, variants=build_variants(config.models, prompts))


def primary_metric(config: RunConfig) -> str:
    return JUDGE_SCORE if config.scoring.judge else config.scoring.metrics[0].split(":")[0]


def start_run(plan: RunPlan, services: Services) -> str:
    config = plan.config
    for variant in plan.variants:
        services.store.save_text("prompt", variant.prompt.text, variant.prompt.hash)
    record: dict[str, Any] = {
        "run": config.priced(services.prices).model_dump(mode="json"),
        "dataset_sha256": plan.dataset.content_hash,
        "dataset_has_reference": plan.dataset.has_reference,
        "n_samples": plan.n_samples,
        "primary_metric": primary_metric(config),
        "variants": [
            {"key": v.key, "model": v.model.spec, "prompt_hash": v.prompt.hash}
            for v in plan.variants
        ],
    }
    run_id = services.store.create_run("run", record)
    services.store.save_samples(run_id, plan.iter_samples())
    return run_id


def resume_config(store: RunStore, run_id: str) -> RunConfig:
    run = store.get_run(run_id)
    if run.kind != "run":
        raise UserInputError(f"Run {run.id} is an {run.kind} run", f"use assay {run.kind} --resume")
    return RunConfig.model_validate(run.config["run"])


def check_resumable(plan: RunPlan, store: RunStore, run_id: str) -> None:
    stored = store.get_run(run_id).config["dataset_sha256"]
    if stored != plan.dataset.content_hash:
        raise UserInputError(
            f"{plan.config.data} changed since run {run_id} started",
            "resume needs the same data; start a new run instead",
        )


async def execute_run(
    plan: RunPlan, services: Services, run_id: str, progress: ProgressSink | None = None
) -> RunReport:
    """Execute what is not yet done, then analyse everything the store holds for the run."""
    done = services.store.completed_keys(run_id)
    engine = Engine(
        plan.config.engine,
        prices=services.prices,
        cache=services.cache,
        spent_before=services.store.spent(run_id),  # the budget is for the whole run
    )
    async with engine:
        scorer = build_scorer(plan, engine)
        ctx = RunContext(run_id, services.store, engine, scorer, progress or NoProgress())
        try:
            outcome = await execute(plan, ctx, done)
        finally:  # calls paid for items that were never saved count too
            services.store.save_spent(run_id, engine.ledger.snapshot())
    status = "complete" if outcome.stopped_reason is None else "stopped"
    if outcome.fatal is not None:
        status = "failed"
    report = analyse(services.store, run_id, status, outcome.stopped_reason)
    services.store.set_status(run_id, status, report.model_dump(mode="json", by_alias=True))
    return report


def build_scorer(plan: RunPlan, engine: Engine) -> ResponseScorer:
    judge_config = plan.config.scoring.judge
    judge = None
    if judge_config is not None:
        from assay.scoring.judge import build_judge

        judge = build_judge(judge_config, engine)
    metrics = build_metrics(plan.config.scoring.metrics, plan.dataset.iter_samples())
    return ResponseScorer(metrics, judge)


def analyse(
    store: RunStore, run_id: str, status: str | None = None, stopped: str | None = None
) -> RunReport:
    """Everything reported is computed from the store, so show/compare/report agree."""
    run = store.get_run(run_id)
    config = RunConfig.model_validate(run.config["run"])
    primary = run.config["primary_metric"]
    tallies, collected = _tally(store, run_id, run.config["variants"], primary)
    summaries = _summaries(run.config["variants"], tallies, primary, config)
    values = {s.variant: collected.of(s.variant) for s in summaries}
    decision = decide(summaries, compare_pairs(values, seed=config.seed))
    return RunReport(
        run_id=run.id,
        status=status or run.status,
        stopped_reason=stopped or (run.summary or {}).get("stopped_reason"),
        dataset=_dataset_info(run.config, config),
        primary_metric=primary,
        variants=summaries,
        comparisons=decision.pairs,
        pareto_quality_cost=decision.pareto_cost,
        pareto_quality_latency=decision.pareto_latency,
        recommendation=decision.recommendation,
        judge_cost_usd=_total([s.judge_cost_usd for s in summaries]),
        total_cost_usd=_total([s.total_cost_usd for s in summaries]),
        spent_usd=_total([s.spent_usd for s in summaries]),
    )


def _tally(
    store: RunStore, run_id: str, variants: list[dict[str, str]], primary: str
) -> tuple[dict[str, VariantTally], PrimaryValues]:
    """One pass over the run's results: each row is folded into its variant's figures and
    paired values, then dropped, so memory follows the numbers kept, not the records."""
    tallies = {v["key"]: VariantTally() for v in variants}
    values = PrimaryValues(primary)
    for row in store.result_rows(run_id, detail_keys=SUMMARY_DETAILS):
        tally = tallies.get(row.variant)
        if tally is None:  # not a variant of the run's config: not reported
            continue
        tally.add(row)
        values.add(row)
    return tallies, values


def _summaries(
    variants: list[dict[str, str]],
    tallies: dict[str, VariantTally],
    primary: str,
    config: RunConfig,
) -> list[VariantSummary]:
    out = []
    for v in variants:
        summary = tallies[v["key"]].summary(v["key"], v["model"], primary, config.seed)
        if config.gpu_cost_per_hour is not None and v["model"].startswith("local/"):
            summary.self_hosting_cost_per_1k_usd = self_hosting_cost_per_1k(
                summary, config.gpu_cost_per_hour, config.engine.local_parallel
            )
        out.append(summary)
    return out


def _dataset_info(record: dict[str, Any], config: RunConfig) -> DatasetInfo:
    return DatasetInfo(
        path=config.data,
        sha256=record["dataset_sha256"],
        n_samples=record["n_samples"],
        has_reference=record["dataset_has_reference"],
    )


def _total(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)
