"""The Python API: the same jobs as the CLI (``assay.jobs``), driven by typed config objects.

from assay import run, RunConfig, ScoringConfig, resolve_model

report = run(RunConfig(data="reviews.jsonl", prompts=["prompt.md"],
                       models=[resolve_model("local/smollm2")],
                       scoring=ScoringConfig(metrics=["label"])))
print(report.recommendation)

A resume continues the stored run with its stored config: pass ``resume=RUN_ID`` and, to raise
the budget or change concurrency, ``changes=ResumeChanges(...)``. Ctrl-C raises
``JobInterrupted`` and leaves the run ``interrupted`` and resumable.
"""

from __future__ import annotations

from pathlib import Path

from assay.analysis.results import RunReport
from assay.benchmark.config import RunConfig
from assay.errors import UserInputError
from assay.evaluation.execute import ProgressSink
from assay.jobs import BenchmarkJob, OptimizeJob, Outputs, ResumeChanges, Session
from assay.optimizer.config import OptimizeConfig
from assay.optimizer.loop import Reporter
from assay.optimizer.records import OptimizeResult

PathLike = str | Path


def run(
    config: RunConfig | None = None,
    *,
    store: PathLike | None = None,
    prices: PathLike | None = None,
    resume: str | None = None,
    changes: ResumeChanges | None = None,
    output: PathLike | None = None,
    progress: ProgressSink | None = None,
) -> RunReport:
    """``assay run``: benchmark the configured models; returns the ``assay.run/v1`` report
    (also written to ``output``)."""
    outputs = Outputs(results=_path(output))
    if config is not None and resume is None:
        session = Session.open(store, prices, use_cache=config.engine.use_cache)
        job = BenchmarkJob.prepare(session, config, outputs)
    elif resume is not None and config is None:
        session = Session.open(store, prices)
        job = BenchmarkJob.resume(session, resume, changes or ResumeChanges(), outputs)
    else:
        raise _config_or_resume()
    return job.execute(progress)


def optimize(
    config: OptimizeConfig | None = None,
    *,
    store: PathLike | None = None,
    prices: PathLike | None = None,
    resume: str | None = None,
    changes: ResumeChanges | None = None,
    output: PathLike | None = None,
    results_json: PathLike | None = None,
    reporter: Reporter | None = None,
) -> OptimizeResult:
    """``assay optimize``: returns the ``assay.optimize/v1`` result; writes the best prompt
    (the one whose test score is reported) to ``output``."""
    outputs = Outputs(prompt=_path(output), results=_path(results_json))
    if config is not None and resume is None:
        session = Session.open(store, prices, use_cache=config.engine.use_cache)
        job = OptimizeJob.prepare(session, config, outputs)
    elif resume is not None and config is None:
        session = Session.open(store, prices)
        job = OptimizeJob.resume(session, resume, changes or ResumeChanges(), outputs)
    else:
        raise _config_or_resume()
    return job.execute(reporter)


def _config_or_resume() -> UserInputError:
    return UserInputError(
        "Pass a config to start a run, or resume=RUN_ID to continue one (not both)",
        "a resume keeps the run's own config; change its budget with changes=ResumeChanges()",
    )


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


__all__ = ["OptimizeConfig", "ResumeChanges", "RunConfig", "optimize", "run"]
