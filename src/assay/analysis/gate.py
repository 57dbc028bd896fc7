"""The CI gate of ``assay run``: checks on a finished run that decide its exit code.

- ``fail_under X``: every variant's primary mean must reach X (the mean, not its interval;
  a variant with nothing scored fails).
- ``fail_if_worse_than RUN``: each variant is compared with the baseline run's variant of the
  same label, paired on the samples both scored (``compare_fixed``: the paired sign-flip
  test); it fails when the outcome is ``inferior`` (``outcome_of``): the interval of
  ``new - baseline`` lies wholly below ``-margin`` (0 without ``--margin``). With several
  variants each is tested at ``alpha / k`` (Bonferroni). A regression too small for the rows
  to show is not caught: that is what ``fail_under`` is for.
- When any check is set, the run must also have completed (a stopped or failed run fails).

Any failed check makes ``assay run`` exit with ``GATE_FAILED_EXIT``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from assay.analysis.compare import primary_values
from assay.analysis.decisions import (
    DecisionConfig,
    SampleValues,
    compare_fixed,
    interval,
    outcome_of,
    per_sample,
)
from assay.analysis.results import RunReport
from assay.analysis.summary import VariantSummary
from assay.errors import AssayError, UserInputError
from assay.files import read_regular_text
from assay.scoring.stats import PairedComparison
from assay.store.runstore import RunStore

GATE_FAILED_EXIT = 3  # distinct from 1 (a failed run or a bug) and 2 (bad input)


class GateConfig(BaseModel):
    """What a run must show for ``assay run`` to exit 0 (``gate:`` in an eval file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fail_under: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Fail (exit code 3) when any variant's mean primary score is below this.",
    )
    fail_if_worse_than: str | None = Field(
        default=None,
        min_length=1,
        description="A baseline: a run id in the store, or the results JSON (-o) of a run. "
        "Fail (exit code 3) when a variant is shown worse than the baseline's variant of the "
        "same label by more than the margin (0 without one).",
    )

    @property
    def active(self) -> bool:
        return self.fail_under is not None or self.fail_if_worse_than is not None


class GateFailed(AssayError):
    exit_code = GATE_FAILED_EXIT


class GateCheck(BaseModel):
    """One check of the gate on one variant (or on the run): its verdict and its numbers."""

    check: str  # "fail-under 0.8", "not worse than 20261128-…", "run complete"
    variant: str | None = None
    passed: bool
    skipped: bool = False  # nothing to check it against (no same-label baseline variant)
    detail: str


class GateResult(BaseModel):
    checks: list[GateCheck]
    baseline: str | None = None  # what the run was compared with, in words

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]


@dataclass(frozen=True)
class Baseline:
    """A stored benchmark run's per-sample primary values, for the worse-than check."""

    run_id: str
    named: str  # what the user gave: the id, or the results file
    primary_metric: str
    dataset_sha256: str
    values: dict[str, SampleValues]  # variant -> sample id -> mean of its repeats

    @property
    def described(self) -> str:
        return self.run_id if self.named == self.run_id else f"{self.run_id} ({self.named})"


def load_baseline(store: RunStore, named: str) -> Baseline:
    """The baseline run ``named`` (a run id, or a results JSON naming one) from the store."""
    run_id = _run_id_in(Path(named).expanduser()) if Path(named).expanduser().is_file() else named
    run = store.get_run(run_id)
    if run.kind != "run":
        raise UserInputError(
            f"Baseline {run.id} is an {run.kind} run", "give a benchmark run (assay run) instead"
        )
    metric = run.config.primary_metric
    values = {
        v.key: per_sample(primary_values(store.result_rows(run.id, variant=v.key), metric))
        for v in run.config.variants
    }
    return Baseline(run.id, named, metric, run.config.dataset_sha256, values)


def _run_id_in(path: Path) -> str:
    """The run id of a results JSON written by ``assay run -o``."""
    try:
        data = json.loads(read_regular_text(path))
    except (OSError, ValueError) as exc:
        raise UserInputError(
            f"Cannot read baseline {path}: {exc}", "give a run id or an assay run -o file"
        ) from None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    if not isinstance(run_id, str) or not run_id:
        raise UserInputError(
            f"Baseline {path} is not a results file of assay run (it has no run_id)",
            "give a run id or the file written by assay run -o",
        )
    return run_id


def check_baseline_fits(
    baseline: Baseline, primary_metric: str, dataset_sha256: str, variants: list[str]
) -> None:
    """Refuse, before any call, a baseline the new run cannot be compared with."""
    where = f"Baseline run {baseline.described}"
    if baseline.primary_metric != primary_metric:
        raise UserInputError(
            f"{where} is scored by {baseline.primary_metric}, this run by {primary_metric}",
            "compare runs scored with the same metric or judge",
        )
    if baseline.dataset_sha256 != dataset_sha256:
        raise UserInputError(
            f"{where} used other data (or the data file changed since)",
            "run the baseline again on this data",
        )
    if not set(variants) & set(baseline.values):
        raise UserInputError(
            f"{where} has variants {', '.join(baseline.values) or 'none'}; "
            f"this run has {', '.join(variants)}",
            "the runs are compared by variant label: give the models the same labels",
        )


def evaluate_gate(
    store: RunStore,
    report: RunReport,
    gate: GateConfig,
    baseline: Baseline | None,
    decision: DecisionConfig,
    seed: int,
) -> GateResult:
    """Every check of ``gate`` on the finished run ``report``."""
    checks = [_completed(report)] if gate.active else []
    if gate.fail_under is not None:
        checks += [_fail_under(v, gate.fail_under) for v in report.variants]
    if baseline is not None:
        new = {
            v.variant: per_sample(
                primary_values(
                    store.result_rows(report.run_id, variant=v.variant), report.primary_metric
                )
            )
            for v in report.variants
        }
        checks += _not_worse(new, baseline, decision, seed)
    return GateResult(checks=checks, baseline=baseline.described if baseline else None)


def _completed(report: RunReport) -> GateCheck:
    done = report.status == "complete"
    why = f" ({report.stopped_reason})" if report.stopped_reason and not done else ""
    return GateCheck(check="run complete", passed=done, detail=f"status {report.status}{why}")


def _fail_under(v: VariantSummary, threshold: float) -> GateCheck:
    name = f"fail-under {threshold:g}"
    score = v.score
    if score is None or score.mean is None:
        return GateCheck(check=name, variant=v.variant, passed=False, detail="nothing scored")
    ok = score.mean >= threshold
    ci = ""
    if score.ci_low is not None and score.ci_high is not None:
        ci = f" (95% CI [{score.ci_low:.3f}, {score.ci_high:.3f}], n={score.n_scored})"
    detail = f"mean {score.mean:.3f}{ci} {'>=' if ok else '<'} {threshold:g}"
    return GateCheck(check=name, variant=v.variant, passed=ok, detail=detail)


def _not_worse(
    new: dict[str, SampleValues], baseline: Baseline, decision: DecisionConfig, seed: int
) -> list[GateCheck]:
    name = f"not worse than {baseline.run_id}"
    shared = [v for v in new if v in baseline.values]
    alpha = decision.alpha / max(1, len(shared))
    checks = []
    for variant, values in new.items():
        if variant not in baseline.values:
            detail = f"not compared: baseline run {baseline.run_id} has no variant {variant!r}"
            checks.append(
                GateCheck(check=name, variant=variant, passed=True, skipped=True, detail=detail)
            )
            continue
        c = compare_fixed(baseline.values[variant], values, alpha, seed)
        checks.append(_worse_check(name, variant, c, decision.margin))
    return checks


def _worse_check(name: str, variant: str, c: PairedComparison, margin: float | None) -> GateCheck:
    if c.n == 0 or c.mean_a is None or c.mean_b is None:
        detail = "no sample scored in both runs: nothing to compare"
        return GateCheck(check=name, variant=variant, passed=False, detail=detail)
    outcome = outcome_of(c, margin)
    m = f"{margin or 0:g}"
    verdicts = {
        "inferior": f"worse by more than the margin {m}",
        "superior": "better",
        "non-inferior": f"not worse by more than the margin {m}",
        "not settled": f"not shown worse by more than the margin {m}",
    }
    detail = (
        f"baseline {c.mean_a:.3f} -> {c.mean_b:.3f} (diff {interval(c)}): "
        f"{verdicts.get(outcome, outcome)}"
    )
    return GateCheck(check=name, variant=variant, passed=outcome != "inferior", detail=detail)


def failure_line(result: GateResult) -> str:
    """The one error line of a failed gate."""
    failed = result.failures()
    first = failed[0]
    who = f"{first.variant}: " if first.variant else ""
    more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
    return f"Gate failed: {first.check}, {who}{first.detail}{more}"
