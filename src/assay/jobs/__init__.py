"""Jobs: the one place that wires a job. The CLI and the Python API call these objects, so a
rule (unique labels, output checks before spending, what a resume may change, what Ctrl-C
leaves behind) is written once and holds for both.

Every job has the same verbs: ``prepare`` (or ``resume``) validates and starts the run,
``estimate`` gives the pre-flight, ``execute`` runs it and returns its result.
"""

from assay.evaluation.session import Session
from assay.jobs.benchmark import BenchmarkJob
from assay.jobs.judge_check import JudgeCheckJob
from assay.jobs.lifecycle import JobInterrupted, ResumeChanges
from assay.jobs.optimize import OptimizeJob, PerModelOptimizeJob
from assay.jobs.outputs import Outputs

__all__ = [
    "BenchmarkJob",
    "JobInterrupted",
    "JudgeCheckJob",
    "OptimizeJob",
    "Outputs",
    "PerModelOptimizeJob",
    "ResumeChanges",
    "Session",
]
