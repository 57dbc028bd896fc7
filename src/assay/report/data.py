"""Everything one run's page shows, read from the run store (and nothing written to it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.analysis.results import RunReport
from assay.records import Sample
from assay.report.optimize_data import OptimizeView, load_optimize
from assay.store.run_record import StoredRun
from assay.store.runstore import ResultRecord, RunRecord, RunStore


@dataclass(frozen=True)
class RunView:
    """One run as the report sees it. ``report`` is ``analyse()``'s, for benchmark runs."""

    run: RunRecord
    report: RunReport | None = None
    results: list[ResultRecord] = field(default_factory=list)
    samples: dict[str, Sample] = field(default_factory=dict)
    iterations: list[dict[str, Any]] = field(default_factory=list)
    optimize: OptimizeView | None = None  # optimize runs: records, result, disagreements
    prompts: dict[str, str] = field(default_factory=dict)  # variant key -> its prompt text

    @property
    def variant_keys(self) -> list[str]:
        return [v.key for v in self.run.config.variants]

    @property
    def variant_models(self) -> dict[str, str]:
        return {v.key: v.model for v in self.run.config.variants}

    @property
    def primary_metric(self) -> str:
        return self.run.config.primary_metric


def is_benchmark(run: RunRecord) -> bool:
    return run.kind == "run" and bool(run.config.variants)


def load_view(store: RunStore, run_id: str) -> RunView:
    """Read one run; benchmark figures come from ``analyse()``, the same as ``assay show``."""
    run = store.get_run(run_id)
    if run.kind == "optimize":
        return RunView(run=run, optimize=load_optimize(store, run))
    if not is_benchmark(run):
        return RunView(run=run, iterations=store.iterations(run.id))
    from assay.analysis.run_analysis import analyse

    return RunView(
        run=run,
        report=analyse(store, run.id),
        results=store.results(run.id),
        samples=store.samples(run.id) or dataset_samples(run.config),
        iterations=store.iterations(run.id),
        prompts=prompt_texts(store, run.config),
    )


def prompt_texts(store: RunStore, stored: StoredRun) -> dict[str, str]:
    """Each variant's prompt as the run saved it (by hash); runs that saved none have {}."""
    out = {}
    for variant in stored.variants:
        text = store.get_text(variant.prompt_hash) if variant.prompt_hash else None
        if text is not None:
            out[variant.key] = text
    return out


def dataset_samples(stored: StoredRun) -> dict[str, Sample]:
    """Rows of runs recorded before the store kept samples (migration 0003): read from the
    data file, and only if its sha256 still matches the one the run recorded; else {}.
    """
    from assay.data.datasets import FieldMapping, load_dataset
    from assay.errors import AssayError

    path = Path(stored.data)
    if not path.is_file():
        return {}
    try:
        dataset = load_dataset(path, FieldMapping.model_validate(stored.mapping))
    except (AssayError, OSError, ValueError):
        return {}
    if dataset.content_hash != stored.dataset_sha256:
        return {}
    return {s.id: s for s in dataset.samples}
