"""The optimize jobs (``assay optimize`` and ``assay.api.optimize``): one model, or each of
several models with its own prompt (``--per-model``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assay.errors import UserInputError
from assay.evaluation.session import Session
from assay.jobs.budget import check_optimize_budget
from assay.jobs.lifecycle import ResumeChanges, resumed_config, run_to_end
from assay.jobs.outputs import Outputs, absolute, check_outputs, write_atomic
from assay.optimizer import loop, per_model
from assay.optimizer.config import OptimizeConfig
from assay.optimizer.estimate import CallEstimate, estimate
from assay.optimizer.per_model import PerModelReport
from assay.optimizer.records import OptimizeResult
from assay.pipeline.loader import spec_files
from assay.providers.batch import refuse_batch
from assay.records import ModelConfig

ReporterFor = Callable[[str], loop.Reporter]


@dataclass(frozen=True)
class OptimizeJob:
    session: Session
    prepared: loop.Prepared
    run_id: str
    outputs: Outputs

    @classmethod
    def prepare(
        cls, session: Session, config: OptimizeConfig, outputs: Outputs = Outputs()
    ) -> OptimizeJob:
        """Validate everything, split the data and start the run (prices pinned)."""
        config = _absolute(config)
        refuse_batch([config.model], "assay optimize")
        check_outputs(outputs, _inputs(config, session))
        check_optimize_budget(config, session.prices)
        prepared = loop.prepare(config)
        return cls(session, prepared, loop.start(prepared, session), outputs)

    @classmethod
    def resume(
        cls,
        session: Session,
        run_id: str,
        changes: ResumeChanges = ResumeChanges(),
        outputs: Outputs = Outputs(),
    ) -> OptimizeJob:
        """Continue a stored run with its own config; ``changes`` may raise the budget or
        change concurrency, nothing else."""
        run, config = resumed_config(session, run_id, "optimize", loop.stored_config, changes)
        check_outputs(outputs, _inputs(config, session))
        check_optimize_budget(config, session.prices)
        prepared = loop.prepare(config)
        loop.check_resumable(prepared, run)
        return cls(session, prepared, run.id, outputs)

    def estimate(self) -> list[CallEstimate]:
        """Worst-case calls and dollars. A pipeline's calls a sample are measured first on a
        few val rows with the starting prompt, which the run keeps (a pilot)."""
        pilot = None
        if self.prepared.pipeline is not None:
            work = loop.pilot(self.prepared, self.session, self.run_id)
            pilot = run_to_end(work, self.session.store, self.run_id, "optimize")
        return estimate(self.prepared, self.session.prices, pilot)

    def execute(self, reporter: loop.Reporter | None = None) -> OptimizeResult:
        """Run the loop to its end and score on test; writes the best prompt and the JSON."""
        work = loop.optimize(self.prepared, self.session, self.run_id, reporter)
        result = run_to_end(work, self.session.store, self.run_id, "optimize")
        write_result(result, self.outputs)
        return result


def write_result(result: OptimizeResult, outputs: Outputs) -> None:
    """The prompt written is exactly the one whose test score the result reports."""
    if outputs.prompt is not None:
        write_atomic(outputs.prompt, result.best_prompt + "\n")
    if outputs.results is not None:
        write_atomic(outputs.results, result.to_json() + "\n")


@dataclass(frozen=True)
class PerModelOptimizeJob:
    """A prompt optimized for each model (one run each, the budget split evenly), then every
    model compared with its own best prompt on the shared test rows."""

    session: Session
    prepared: list[loop.Prepared]
    outputs: Outputs

    @classmethod
    def prepare(
        cls,
        session: Session,
        config: OptimizeConfig,
        models: Sequence[ModelConfig],
        outputs: Outputs = Outputs(),
    ) -> PerModelOptimizeJob:
        """Every model's run is validated before any call."""
        if len(models) < 2:
            raise UserInputError("--per-model needs two or more models", "pass -m A -m B")
        if config.pipeline is not None:
            raise UserInputError(
                "--per-model does not take --pipeline",
                "optimize the pipeline's prompt for one model at a time",
            )
        configs = per_model.per_model_configs(_absolute(config), models)
        names = per_model.labels(configs)
        prompts = [per_model.output_path(outputs.prompt, n) for n in names]
        check_outputs(
            Outputs(results=outputs.results), [*_inputs(config, session), *filter(None, prompts)]
        )
        for path in filter(None, prompts):
            check_outputs(Outputs(prompt=path), _inputs(config, session))
        for one in configs:
            check_optimize_budget(one, session.prices)
        return cls(session, [loop.prepare(c) for c in configs], outputs)

    @property
    def labels(self) -> list[str]:
        return per_model.labels([p.config for p in self.prepared])

    def estimate(self) -> list[CallEstimate]:
        return [row for p in self.prepared for row in estimate(p, self.session.prices)]

    def execute(self, reporter_for: ReporterFor | None = None) -> PerModelReport:
        results = [
            self._one(name, prepared, reporter_for)
            for name, prepared in zip(self.labels, self.prepared, strict=True)
        ]
        report = per_model.compare_on_test(
            self.session, self.prepared[0], results, self.labels, self.outputs.prompt
        )
        if self.outputs.results is not None:
            write_atomic(self.outputs.results, report.to_json() + "\n")
        return report

    def _one(
        self, name: str, prepared: loop.Prepared, reporter_for: ReporterFor | None
    ) -> OptimizeResult:
        run_id = loop.start(prepared, self.session)
        reporter = reporter_for(name) if reporter_for else None
        work = loop.optimize(prepared, self.session, run_id, reporter)
        result = run_to_end(work, self.session.store, run_id, "optimize")
        write_result(result, Outputs(prompt=per_model.output_path(self.outputs.prompt, name)))
        return result


def _absolute(config: OptimizeConfig) -> OptimizeConfig:
    return config.model_copy(
        update={"data": absolute(config.data), "prompt": absolute(config.prompt)}
    )


def _inputs(config: OptimizeConfig, session: Session) -> list[str | Path]:
    return [config.data, config.prompt, *spec_files(config.pipeline), session.store.path.parent]
