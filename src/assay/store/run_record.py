"""The typed record of what a run set out to do, written when it starts and read by everything
that shows it (``show``, ``compare``, the report, the dashboard, a resume).

The job's own config (a ``RunConfig`` or ``OptimizeConfig``) is kept whole as ``job`` and only
that job validates it; everything the readers need is a typed field here. Runs recorded before
this record existed are read by ``StoredRun.read``, which converts their layout.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunKind = Literal["run", "optimize"]


class StoredVariant(BaseModel):
    """One compared variant: its key in the results table, its model and prompt."""

    model_config = ConfigDict(frozen=True)

    key: str
    model: str
    prompt_hash: str | None = None
    batch: bool = False  # its calls went through the provider's batch API
    batch_discount: float | None = None  # the share of the price that API takes off


class StoredShard(BaseModel):
    """A run made with ``--shard index/count``: it holds only that shard's rows."""

    model_config = ConfigDict(frozen=True)

    index: int
    count: int
    rows_all_shards: int  # the rows of the whole run, every shard's together

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class StoredRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: RunKind
    data: str
    dataset_sha256: str
    dataset_has_reference: bool = True
    n_samples: int | None = None
    primary_metric: str  # the key the primary scores are stored under
    repeats: int = 1
    seed: int = 0
    models: list[str] = Field(default_factory=list)  # task model specs
    judges: list[str] = Field(default_factory=list)  # judge model specs
    variants: list[StoredVariant] = Field(default_factory=list)
    split: dict[str, list[str]] | None = None  # optimize: sample ids of train/val/test
    gpu_cost_per_hour: float | None = None
    local_parallel: int = 4
    mapping: dict[str, str | None] = Field(default_factory=dict)  # the dataset's field mapping
    job: dict[str, Any] = Field(default_factory=dict)  # the job's config; its job validates it
    shard: StoredShard | None = None  # a shard of a run (``--shard``), merged by ``assay merge``
    merged_from: list[str] = Field(default_factory=list)  # the shard runs it was merged from

    def split_ids(self, name: str) -> list[str]:
        """The sample ids of one split (``train``, ``val``, ``test``); [] for a benchmark run."""
        return (self.split or {}).get(name, [])

    @classmethod
    def read(cls, kind: str, raw: dict[str, Any]) -> StoredRun:
        """Parse a stored record, converting the layout of runs recorded before this one."""
        if "job" in raw:
            return cls.model_validate(raw)
        return cls.model_validate(_from_legacy(kind, raw))


def _from_legacy(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The old layout: ``{"run" | "optimize": config, "dataset_sha256": ..., ...}``."""
    job = raw.get("run") or raw.get("optimize") or {}
    scoring = job.get("scoring") or {}
    judge = scoring.get("judge") or {}
    models = [m.get("spec", "") for m in job.get("models", [])]
    if "model" in job:
        models = [job["model"].get("spec", "")]
    return {
        "kind": kind,
        "data": str(job.get("data", "")),
        "dataset_sha256": str(raw.get("dataset_sha256", "")),
        "dataset_has_reference": raw.get("dataset_has_reference", True),
        "n_samples": raw.get("n_samples"),
        "primary_metric": _legacy_primary(raw.get("primary_metric", ""), scoring),
        "repeats": job.get("repeats", 1),
        "seed": job.get("seed", 0),
        "models": models,
        "judges": [m.get("spec", "") for m in judge.get("models", [])],
        "variants": raw.get("variants", []),
        "split": raw.get("split"),
        "gpu_cost_per_hour": job.get("gpu_cost_per_hour"),
        "local_parallel": (job.get("engine") or {}).get("local_parallel", 4),
        "mapping": job.get("mapping") or {},
        "job": job,
    }


def _legacy_primary(stored: str, scoring: dict[str, Any]) -> str:
    """Old runs stored a parameterised first metric cut at its colon (``number``), while its
    scores were saved under the full name (``number:0.01``): repair it from the metric spec."""
    metrics = scoring.get("metrics") or []
    if scoring.get("judge") or not metrics:
        return stored
    from assay.scoring.metrics import metric_name

    return metric_name(str(metrics[0]))
