"""An optimize run as the report and the dashboard see it, read from the run store.

The iteration records and the final result are the optimizer's own typed records
(``assay.optimize/v1``); nothing here computes a statistic the run did not store. The only
derived data are the test rows where the starting and the final prompt scored differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from assay.analysis.runs_compare import prompt_variant
from assay.optimizer.records import IterationRecord, OptimizeResult
from assay.records import Sample
from assay.store.runstore import ResultRecord, RunRecord, RunStore


@dataclass(frozen=True)
class Disagreement:
    """One test row the two prompts scored differently."""

    sample_id: str
    sample: Sample | None
    baseline: ResultRecord
    final: ResultRecord


@dataclass(frozen=True)
class OptimizeView:
    records: list[IterationRecord]
    result: OptimizeResult | None  # None until the run has scored on test
    metric: str
    unreadable: int = 0  # iteration records this version cannot read
    disagreements: list[Disagreement] = field(default_factory=list)
    test_pairs: int = 0  # test rows where both prompts have a result

    @property
    def baseline_prompt(self) -> str | None:
        first = next((r for r in self.records if r.status == "baseline"), None)
        return first.prompt if first else None

    @property
    def best_prompt(self) -> str | None:
        """The final prompt, or while the run goes on the best one so far."""
        if self.result is not None:
            return self.result.best_prompt
        kept = [r for r in self.records if r.status in ("baseline", "accepted")]
        return kept[-1].prompt if kept else None

    def label(self, prompt_hash: str | None) -> str:
        """A prompt named by the iteration that proposed it, never by its hash."""
        if prompt_hash is None:
            return "–"
        found = parent_record(self.records, prompt_hash)
        if found is None:
            return "an earlier prompt"
        return "the starting prompt" if found.status == "baseline" else f"iteration {found.idx}"


def parent_record(records: list[IterationRecord], prompt_hash: str) -> IterationRecord | None:
    """The record that made this prompt the best: the baseline or an accepted candidate
    (a rejected candidate may propose the same text again, and is never a parent)."""
    same = [r for r in records if r.prompt_hash == prompt_hash]
    kept = [r for r in same if r.status in ("baseline", "accepted")]
    found = kept or same
    return found[0] if found else None


def optimize_result(run: RunRecord) -> OptimizeResult | None:
    """The result an optimize run saved when it finished, if it has one this version reads."""
    if run.kind != "optimize" or not run.summary:
        return None
    try:
        return OptimizeResult.model_validate(run.summary)
    except ValidationError:
        return None


def load_optimize(store: RunStore, run: RunRecord) -> OptimizeView:
    records, unreadable = _records(store, run.id)
    result = optimize_result(run)
    view = OptimizeView(records, result, run.config.primary_metric, unreadable)
    if result is None or result.baseline.prompt_hash == result.final.prompt_hash:
        return view
    test_ids = run.config.split_ids("test")
    pairs = _test_pairs(store, run, result, test_ids)
    samples = store.samples(run.id)
    found = [
        Disagreement(sample_id, samples.get(sample_id), base, final)
        for sample_id, (base, final) in pairs.items()
        if _value(base, view.metric) != _value(final, view.metric)
    ]
    return OptimizeView(records, result, view.metric, unreadable, found, len(pairs))


def _records(store: RunStore, run_id: str) -> tuple[list[IterationRecord], int]:
    records, unreadable = [], 0
    for raw in store.iterations(run_id):
        try:
            records.append(IterationRecord.model_validate(raw))
        except ValidationError:
            unreadable += 1
    return records, unreadable


def _test_pairs(
    store: RunStore, run: RunRecord, result: OptimizeResult, test_ids: list[str]
) -> dict[str, tuple[ResultRecord, ResultRecord]]:
    """Each test row's result under the starting and the final prompt, in split order."""
    base_key = prompt_variant(result.baseline.prompt_hash)
    final_key = prompt_variant(result.final.prompt_hash)
    wanted = set(test_ids)
    by_variant: dict[str, dict[str, ResultRecord]] = {base_key: {}, final_key: {}}
    for r in store.results(run.id):
        if r.variant in by_variant and r.sample_id in wanted and r.repeat == 0:
            by_variant[r.variant][r.sample_id] = r
    base, final = by_variant[base_key], by_variant[final_key]
    return {i: (base[i], final[i]) for i in test_ids if i in base and i in final}


def _value(result: ResultRecord, metric: str) -> float | None:
    score = result.scores.get(metric)
    return score.value if score is not None and score.is_scored else None
