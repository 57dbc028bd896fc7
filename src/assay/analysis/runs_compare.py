"""Compare two runs on the same dataset, sample by sample (``assay compare``)."""

from __future__ import annotations

from pydantic import BaseModel

from assay.analysis.compare import primary_values
from assay.errors import UserInputError
from assay.scoring.stats import PairedComparison, paired_compare
from assay.store.runstore import RunStore


class RunComparison(BaseModel):
    run_a: str
    variant_a: str
    run_b: str
    variant_b: str
    metric: str
    comparison: PairedComparison

    def sentence(self) -> str:
        c = self.comparison
        if c.diff is None:
            return "The two runs share no scored samples."
        verdict = "a significant" if c.significant else "not a significant"
        return (
            f"{self.run_b} ({self.variant_b}) vs {self.run_a} ({self.variant_a}) on {c.n} paired "
            f"samples, metric {self.metric}: {c.mean_a:.3f} -> {c.mean_b:.3f}, diff {c.diff:+.3f}"
            f" (95% CI [{c.ci_low:+.3f}, {c.ci_high:+.3f}], p={c.p_value:.3g}): {verdict} change."
        )


def _pick_variant(store: RunStore, run_id: str, wanted: str | None) -> tuple[str, str, str]:
    run = store.get_run(run_id)
    keys = [v.key for v in run.config.variants]
    if wanted is None and len(keys) == 1:
        wanted = keys[0]
    if wanted is None or wanted not in keys:
        raise UserInputError(
            f"Run {run.id} has variants {keys}", "choose one with --variant-a / --variant-b"
        )
    return run.id, wanted, run.config.dataset_sha256


def compare_runs(
    store: RunStore, run_a: str, run_b: str, variant_a: str | None, variant_b: str | None
) -> RunComparison:
    id_a, key_a, data_a = _pick_variant(store, run_a, variant_a)
    id_b, key_b, data_b = _pick_variant(store, run_b, variant_b)
    if data_a != data_b:
        raise UserInputError("The two runs used different datasets", "compare runs on one dataset")
    metric = store.get_run(id_a).config.primary_metric
    a = primary_values(store.result_rows(id_a, variant=key_a), metric)
    b = primary_values(store.result_rows(id_b, variant=key_b), metric)
    keys = sorted(set(a) & set(b))
    comparison = paired_compare([a[k] for k in keys], [b[k] for k in keys])
    return RunComparison(
        run_a=id_a,
        variant_a=key_a,
        run_b=id_b,
        variant_b=key_b,
        metric=metric,
        comparison=comparison,
    )
