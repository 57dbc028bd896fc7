"""The CI gate of a benchmark job: its baseline read and checked before the run starts, its
checks made on the finished run, and the JUnit and Markdown files written."""

from __future__ import annotations

from dataclasses import dataclass

from assay.analysis.gate import (
    Baseline,
    GateConfig,
    GateResult,
    check_baseline_fits,
    evaluate_gate,
    load_baseline,
)
from assay.analysis.results import RunReport
from assay.benchmark.plan import RunPlan
from assay.evaluation.session import Session
from assay.jobs.benchmark import BenchmarkJob
from assay.jobs.outputs import write_ci_outputs


@dataclass(frozen=True)
class RunGate:
    config: GateConfig
    baseline: Baseline | None = None

    @classmethod
    def open(cls, session: Session, config: GateConfig) -> RunGate:
        """Read the baseline run now: a wrong id or file fails before anything is spent."""
        named = config.fail_if_worse_than
        return cls(config, load_baseline(session.store, named) if named else None)

    def check_plan(self, plan: RunPlan) -> None:
        """Refuse a baseline this run cannot be compared with (metric, data, labels)."""
        if self.baseline is not None:
            keys = [v.key for v in plan.variants]
            check_baseline_fits(self.baseline, plan.primary_metric, plan.dataset.content_hash, keys)

    def evaluate(self, job: BenchmarkJob, report: RunReport) -> GateResult:
        """The gate's checks on the finished run; writes the job's JUnit and summary files."""
        config = job.plan.config
        result = evaluate_gate(
            job.session.store, report, self.config, self.baseline, config.decision, config.seed
        )
        write_ci_outputs(job.outputs, report, result)
        return result
