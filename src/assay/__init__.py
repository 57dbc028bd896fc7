"""Assay: choose and tune an LLM on your own data.

The Python API (``from assay import run, optimize, RunConfig, ...``) runs the same jobs as the
CLI. Imports are lazy, so ``import assay`` (and ``assay --help``) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "assay.api",
    "optimize": "assay.api",
    "RunConfig": "assay.benchmark.config",
    "OptimizeConfig": "assay.optimizer.config",
    "ScoringConfig": "assay.evaluation.config",
    "ResumeChanges": "assay.jobs.lifecycle",
    "JobInterrupted": "assay.jobs.lifecycle",
    "resolve_model": "assay.providers.specs",
    "BatchSettings": "assay.engine.batch",
    "EngineConfig": "assay.engine.engine",
}

if TYPE_CHECKING:
    from assay.api import optimize, run
    from assay.benchmark.config import RunConfig
    from assay.engine.batch import BatchSettings
    from assay.engine.engine import EngineConfig
    from assay.evaluation.config import ScoringConfig
    from assay.jobs.lifecycle import JobInterrupted, ResumeChanges
    from assay.optimizer.config import OptimizeConfig
    from assay.providers.specs import resolve_model


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'assay' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


__all__ = [
    "BatchSettings",
    "EngineConfig",
    "JobInterrupted",
    "OptimizeConfig",
    "ResumeChanges",
    "RunConfig",
    "ScoringConfig",
    "optimize",
    "resolve_model",
    "run",
]
