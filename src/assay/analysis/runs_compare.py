"""Compare two runs on the same dataset, sample by sample (``assay compare``).

A benchmark run is compared through one of its variants (a model, or a model + prompt). An
optimize run is compared through one of its prompts, ``final`` (the default) or ``baseline``,
on its held-out test split only: the rows the optimizer never chose on. Two optimize runs are
paired on the test rows they share (the same data, ``--split`` and ``--seed`` give the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from assay.analysis.compare import primary_values
from assay.errors import UserInputError
from assay.scoring.stats import PairedComparison, paired_compare
from assay.store.runstore import RunRecord, RunStore

OPTIMIZE_PROMPTS = {"final": "final prompt", "baseline": "starting prompt"}
ItemKey = tuple[str, int]  # (sample id, repeat), as ``primary_values`` keys them


def prompt_variant(prompt_hash: str) -> str:
    """The results-table key of an optimize run's prompt (``optimizer.evaluate.variant_key``)."""
    return f"prompt:{prompt_hash[:16]}"


class RunComparison(BaseModel):
    run_a: str
    variant_a: str
    run_b: str
    variant_b: str
    metric: str
    comparison: PairedComparison
    label_a: str = ""  # what the variant is, in words (an optimize run's "final prompt …")
    label_b: str = ""
    scope: str = "samples"  # "test samples" when an optimize run is compared on its test split

    def sentence(self) -> str:
        c = self.comparison
        if c.diff is None:
            return f"The two runs share no scored {self.scope}."
        verdict = "a significant" if c.significant else "not a significant"
        return (
            f"{self.run_b} ({self.label_b or self.variant_b}) vs {self.run_a} "
            f"({self.label_a or self.variant_a}) on {c.n} paired {self.scope}, metric "
            f"{self.metric}: {c.mean_a:.3f} -> {c.mean_b:.3f}, diff {c.diff:+.3f}"
            f" (95% CI [{c.ci_low:+.3f}, {c.ci_high:+.3f}], p={c.p_value:.3g}): {verdict} change."
        )


@dataclass(frozen=True)
class Side:
    """One run's part in a comparison: which results, named how, on which rows."""

    run: RunRecord
    key: str  # the variant in the results table
    label: str
    only: tuple[str, ...] | None = None  # sample ids it is compared on, in order (None: all)


class _Prompts(BaseModel):
    prompt_hash: str


class _OptimizeOutcome(BaseModel):
    """The part of an optimize run's saved result (``assay.optimize/v1``) a comparison reads."""

    baseline: _Prompts
    final: _Prompts


def _pick_variant(store: RunStore, run_id: str, wanted: str | None) -> Side:
    run = store.get_run(run_id)
    if run.kind == "optimize":
        return _optimize_side(run, wanted)
    keys = [v.key for v in run.config.variants]
    if wanted is None and len(keys) == 1:
        wanted = keys[0]
    if wanted is None or wanted not in keys:
        raise UserInputError(
            f"Run {run.id} has variants {', '.join(keys) or 'none'}",
            "choose one with --variant-a / --variant-b",
        )
    return Side(run, wanted, wanted)


def _optimize_side(run: RunRecord, wanted: str | None) -> Side:
    wanted = wanted or "final"
    if wanted not in OPTIMIZE_PROMPTS:
        raise UserInputError(
            f"Optimize run {run.id} is compared by its prompt, not {wanted!r}",
            "use --variant-a / --variant-b final (the default) or baseline",
        )
    try:
        outcome = _OptimizeOutcome.model_validate(run.summary or {})
    except ValidationError:
        raise UserInputError(
            f"Optimize run {run.id} has no final prompt yet (it is {run.status})",
            f"compare it once it has scored on test: assay optimize --resume {run.id}",
        ) from None
    prompt = outcome.final if wanted == "final" else outcome.baseline
    model = ", ".join(run.config.models)
    label = f"{OPTIMIZE_PROMPTS[wanted]}, {model}" if model else OPTIMIZE_PROMPTS[wanted]
    test = tuple(run.config.split_ids("test"))
    return Side(run, prompt_variant(prompt.prompt_hash), label, test)


def compare_runs(
    store: RunStore, run_a: str, run_b: str, variant_a: str | None, variant_b: str | None
) -> RunComparison:
    a = _pick_variant(store, run_a, variant_a)
    b = _pick_variant(store, run_b, variant_b)
    if a.run.config.dataset_sha256 != b.run.config.dataset_sha256:
        raise UserInputError("The two runs used different datasets", "compare runs on one dataset")
    metric = a.run.config.primary_metric
    values_a = primary_values(store.result_rows(a.run.id, variant=a.key), metric)
    values_b = primary_values(store.result_rows(b.run.id, variant=b.key), metric)
    keys = _paired_keys(set(values_a) & set(values_b), a, b)
    restricted = a.only is not None or b.only is not None
    if restricted and not keys:
        raise UserInputError(
            f"Runs {a.run.id} and {b.run.id} share no test rows",
            "optimize both on the same data with the same --split and --seed",
        )
    seed = a.run.config.seed if restricted else 0  # an optimize run's own test used its seed
    comparison = paired_compare([values_a[k] for k in keys], [values_b[k] for k in keys], seed)
    return RunComparison(
        run_a=a.run.id,
        variant_a=a.key,
        run_b=b.run.id,
        variant_b=b.key,
        metric=metric,
        comparison=comparison,
        label_a=a.label,
        label_b=b.label,
        scope="test samples" if restricted else "samples",
    )


def _paired_keys(shared: set[ItemKey], a: Side, b: Side) -> list[ItemKey]:
    """The items both sides may be compared on; in an optimize run's split order, the order
    its own paired test used (the random sign flips follow it), else sorted."""
    order = a.only if a.only is not None else b.only
    if order is None:
        return sorted(shared)
    allowed = [set(side.only) for side in (a, b) if side.only is not None]
    rank = {sample_id: i for i, sample_id in enumerate(order)}
    kept = [k for k in shared if all(k[0] in ids for ids in allowed)]
    return sorted(kept, key=lambda k: (rank[k[0]], k[1]))
