"""Live progress of a run: results recorded per variant against what the run planned; for an
optimize run, its phase (baseline, iteration k of N, test) and its call budget."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import ValidationError

from assay.optimizer.config import OptimizeConfig
from assay.optimizer.records import IterationRecord
from assay.store.runstore import RunRecord, RunStore


def progress(store: RunStore, run_id: str) -> dict[str, Any]:
    """``done``/``planned`` per variant (planned = samples x repeats), and in total."""
    run = store.get_run(run_id)
    config = run.config
    keys = store.completed_keys(run.id)
    done = Counter(variant for variant, _, _ in keys)
    n_samples = config.n_samples
    planned = n_samples * config.repeats if n_samples is not None else None
    variants = [
        {"key": v.key, "done": done.get(v.key, 0), "planned": planned} for v in config.variants
    ]
    total_planned = None if planned is None else planned * len(variants)
    out = {
        "run_id": run.id,
        "kind": run.kind,
        "status": run.status,
        "updated_at": run.updated_at,
        "done": sum(done.values()),
        "planned": total_planned,
        "variants": variants,
        "iterations": None,
    }
    if run.kind == "optimize":
        tested = {sample for _, sample, _ in keys} & set(config.split_ids("test"))
        out.update(optimize_progress(store, run, bool(tested)))
    return out


def optimize_progress(store: RunStore, run: RunRecord, tested: bool) -> dict[str, Any]:
    """Phase and budget: the calls and dollars spent so far against the run's hard limits."""
    records = _records(store, run.id)
    job = _job(run)
    max_iterations = job.stop.max_iterations if job else None
    calls, cost, cost_known = _spent(store, run.id, records)
    budget = job.engine.budget if job else None
    max_calls = budget.max_calls if budget else None
    max_cost = budget.max_cost_usd if budget else None
    return {
        "iterations": max(0, len(records) - 1),
        "max_iterations": max_iterations,
        "phase": phase(run.status, records, max_iterations, tested),
        "calls": calls,
        "max_calls": max_calls,
        "cost_usd": cost if cost_known or max_cost is not None else None,
        "max_cost_usd": max_cost,
        "fraction": _fraction(calls, max_calls, cost, max_cost)
        or _iteration_share(records, max_iterations),
    }


def phase(
    status: str, records: list[IterationRecord], max_iterations: int | None, tested: bool
) -> str:
    if status != "running":
        return status
    if tested:
        return "test: scoring the starting and the best prompt on the held-out split"
    if not records:
        return "baseline: scoring the starting prompt on train and validation"
    of = f" of {max_iterations}" if max_iterations is not None else ""
    return f"iteration {len(records)}{of}"


def _records(store: RunStore, run_id: str) -> list[IterationRecord]:
    records = []
    for raw in store.iterations(run_id):
        try:
            records.append(IterationRecord.model_validate(raw))
        except ValidationError:
            continue
    return records


def _job(run: RunRecord) -> OptimizeConfig | None:
    try:
        return OptimizeConfig.model_validate(run.config.job)
    except ValidationError:
        return None


def _spent(store: RunStore, run_id: str, records: list[IterationRecord]) -> tuple[int, float, bool]:
    """Calls and dollars so far: the spend saved with each result, or the last checkpoint."""
    saved = store.spent(run_id)
    last = records[-1].spend if records else None
    calls = max(saved.calls, last.calls if last else 0)
    cost = max(saved.cost_usd, last.cost_usd if last else 0.0)
    return calls, cost, bool(last and last.cost_known)


def _fraction(
    calls: int, max_calls: int | None, cost: float, max_cost: float | None
) -> float | None:
    """How much of the budget is used (the larger share of the two limits); None without one."""
    shares = []
    if max_calls:
        shares.append(calls / max_calls)
    if max_cost:
        shares.append(cost / max_cost)
    return min(1.0, max(shares)) if shares else None


def _iteration_share(records: list[IterationRecord], max_iterations: int | None) -> float | None:
    if not max_iterations:
        return None
    return min(1.0, max(0, len(records) - 1) / max_iterations)
