"""Everything one run's page shows, read from the run store (and nothing written to it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.bench.results import RunReport
from assay.records import Sample
from assay.store.runstore import ResultRecord, RunRecord, RunStore


@dataclass(frozen=True)
class RunView:
    """One run as the report sees it. ``report`` is ``analyse()``'s, for benchmark runs."""

    run: RunRecord
    report: RunReport | None = None
    results: list[ResultRecord] = field(default_factory=list)
    samples: dict[str, Sample] = field(default_factory=dict)
    iterations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def variant_keys(self) -> list[str]:
        return [str(v["key"]) for v in self.run.config.get("variants", [])]

    @property
    def variant_models(self) -> dict[str, str]:
        return {str(v["key"]): str(v.get("model", "")) for v in self.run.config.get("variants", [])}

    @property
    def primary_metric(self) -> str:
        return str(self.run.config.get("primary_metric", ""))


def is_benchmark(run: RunRecord) -> bool:
    return run.kind == "run" and "variants" in run.config and "run" in run.config


def load_view(store: RunStore, run_id: str) -> RunView:
    """Read one run; benchmark figures come from ``analyse()``, the same as ``assay show``."""
    run = store.get_run(run_id)
    if not is_benchmark(run):
        return RunView(run=run, iterations=store.iterations(run.id))
    from assay.bench.runner import analyse

    return RunView(
        run=run,
        report=analyse(store, run.id),
        results=store.results(run.id),
        samples=store.samples(run.id) or dataset_samples(run.config),
        iterations=store.iterations(run.id),
    )


def dataset_samples(config: dict[str, Any]) -> dict[str, Sample]:
    """Rows of runs recorded before the store kept samples (migration 0003): read from the
    data file, and only if its sha256 still matches the one the run recorded; else {}.
    """
    from assay.data.datasets import FieldMapping, load_dataset
    from assay.errors import AssayError

    run = config.get("run", {})
    path = Path(str(run.get("data", "")))
    if not path.is_file():
        return {}
    try:
        dataset = load_dataset(path, FieldMapping.model_validate(run.get("mapping") or {}))
    except (AssayError, OSError, ValueError):
        return {}
    if dataset.content_hash != config.get("dataset_sha256"):
        return {}
    return {s.id: s for s in dataset.samples}
