"""The benchmark job (``assay run`` and ``assay.api.run``): prepare -> estimate -> execute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assay.analysis.results import RunReport
from assay.benchmark import runner
from assay.benchmark.config import RunConfig
from assay.benchmark.plan import (
    Estimate,
    RunPlan,
    estimate_judge,
    estimate_pipeline,
    estimate_task,
)
from assay.evaluation.execute import ProgressSink
from assay.evaluation.session import Session
from assay.jobs.budget import check_run_budget
from assay.jobs.lifecycle import ResumeChanges, resumed_config, run_to_end
from assay.jobs.outputs import Outputs, absolute, check_outputs, write_atomic
from assay.pipeline.loader import spec_files


@dataclass(frozen=True)
class BenchmarkJob:
    session: Session
    plan: RunPlan
    run_id: str
    outputs: Outputs

    @classmethod
    def prepare(
        cls,
        session: Session,
        config: RunConfig,
        outputs: Outputs = Outputs(),
        before_start: Callable[[RunPlan], None] | None = None,
    ) -> BenchmarkJob:
        """Validate everything and start the run (prices pinned); no model call yet.
        ``before_start`` checks the plan further (a CI gate's baseline) before the run is
        recorded."""
        config = config.model_copy(
            update={
                "data": absolute(config.data),
                "prompts": [absolute(p) if isinstance(p, str) else p for p in config.prompts],
            }
        )
        check_outputs(outputs, _inputs(config, session))
        check_run_budget(config, session.prices)
        plan = runner.prepare(config)
        if before_start is not None:
            before_start(plan)
        return cls(session, plan, runner.start_run(plan, session), outputs)

    @classmethod
    def resume(
        cls,
        session: Session,
        run_id: str,
        changes: ResumeChanges = ResumeChanges(),
        outputs: Outputs = Outputs(),
    ) -> BenchmarkJob:
        """Continue a stored run with its own config; ``changes`` may raise the budget or
        change concurrency, nothing else."""
        run, config = resumed_config(session, run_id, "run", runner.stored_config, changes)
        check_outputs(outputs, _inputs(config, session))
        check_run_budget(config, session.prices)
        plan = runner.prepare(config)
        runner.check_resumable(plan, run)
        return cls(session, plan, run.id, outputs)

    def estimate(self) -> list[Estimate]:
        """Worst-case calls, tokens and dollars for the whole run, task and judge. A pipeline's
        calls per row are measured first on a few rows, which the run keeps (a pilot)."""
        prices = self.session.prices
        task = estimate_task(self.plan, prices) if self.plan.pipeline is None else self._pilot()
        return [*task, *estimate_judge(self.plan, prices)]

    def _pilot(self) -> list[Estimate]:
        store = self.session.store
        run_to_end(
            runner.execute_pilot(self.plan, self.session, self.run_id), store, self.run_id, "run"
        )
        pilot = {(i.variant.key, i.sample.id, i.repeat) for i in self.plan.pilot_items()}
        results = [r for r in store.results(self.run_id) if r.key in pilot]
        return estimate_pipeline(self.plan, self.session.prices, results)

    def completed(self) -> set[tuple[str, str, int]]:
        """The (variant, sample, repeat) keys already done: a resume skips them."""
        return self.session.store.completed_keys(self.run_id)

    def execute(self, progress: ProgressSink | None = None) -> RunReport:
        """Run what is not done yet and analyse the whole run; writes ``outputs.results``."""
        work = runner.execute_run(self.plan, self.session, self.run_id, progress)
        report = run_to_end(work, self.session.store, self.run_id, "run")
        if self.outputs.results is not None:
            write_atomic(self.outputs.results, report.to_json() + "\n")
        return report


def _inputs(config: RunConfig, session: Session) -> list[str | Path]:
    return [
        config.data,
        *config.prompt_files(),
        *spec_files(config.pipeline),
        session.store.path.parent,
    ]
