"""The Python API: the same jobs as the CLI, driven by typed config objects.

from assay.api import run, optimize
from assay.bench.config import RunConfig, ScoringConfig
from assay.providers import resolve_model

report = run(RunConfig(data="reviews.jsonl", prompts=["prompt.md"],
                       models=[resolve_model("local/smollm2")],
                       scoring=ScoringConfig(metrics=["label"])))
print(report.recommendation)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from assay.bench import runner
from assay.bench.config import RunConfig
from assay.bench.results import RunReport
from assay.engine.cache import ResponseCache
from assay.engine.pricing import load_price_table
from assay.optimize import loop
from assay.optimize.config import OptimizeConfig
from assay.optimize.records import OptimizeResult
from assay.store.runstore import RunStore, store_dir


def services(
    store: str | Path | None = None, prices: str | Path | None = None, use_cache: bool = True
) -> runner.Services:
    """The run store, price table and cache that a run uses (same defaults as the CLI)."""
    cache = ResponseCache(store_dir(store) / "cache.sqlite") if use_cache else None
    return runner.Services(RunStore.open(store), load_price_table(prices), cache)


def run(
    config: RunConfig,
    *,
    store: str | Path | None = None,
    prices: str | Path | None = None,
    resume: str | None = None,
) -> RunReport:
    """``assay run``: benchmark the configured models; returns the ``assay.run/v1`` report."""
    svc = services(store, prices, config.engine.use_cache)
    if resume is None:
        plan = runner.prepare(config)
        run_id = runner.start_run(plan, svc)
    else:  # the stored run (its prices pinned), with the caller's engine and budget
        stored = runner.resume_config(svc.store, resume)
        plan = runner.prepare(stored.model_copy(update={"engine": config.engine}))
        runner.check_resumable(plan, svc.store, resume)
        run_id = resume
    return asyncio.run(runner.execute_run(plan, svc, run_id))


def optimize(
    config: OptimizeConfig,
    *,
    store: str | Path | None = None,
    prices: str | Path | None = None,
    output: Path | None = None,
    resume: str | None = None,
) -> OptimizeResult:
    """``assay optimize``: returns the ``assay.optimize/v1`` result; writes ``output``."""
    svc = services(store, prices, config.engine.use_cache)
    if resume is None:
        prepared = loop.prepare(config)
        run_id = loop.start(prepared, svc)
    else:  # the stored run (its prices pinned), with the caller's engine and budget
        stored = loop.resume_config(svc.store, resume)
        prepared = loop.prepare(stored.model_copy(update={"engine": config.engine}))
        loop.check_resumable(prepared, svc.store, resume)
        run_id = resume
    return asyncio.run(loop.optimize(prepared, svc, run_id, output=output))


__all__ = ["OptimizeConfig", "RunConfig", "optimize", "run", "services"]
