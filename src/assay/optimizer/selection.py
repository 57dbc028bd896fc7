"""The accept rule: which candidate, if any, replaces the best prompt.

Candidates compete on train mini-batches; val only confirms. Each *look* at val compares the
candidates that reached it with the best prompt on the same val rows. The bar is the 1 - alpha
quantile of the largest candidate's mean paired difference when each val row's differences
are sign-flipped jointly for every candidate (``MaxSignFlipTest``, on the sign vectors of the
paired test in ``assay.scoring.stats``), so comparing more candidates raises the bar. The r-th
look of a run spends ``alpha / 2**r`` of the run's false-accept budget: summed over any number
of looks, the chance of accepting a candidate that is no better than the prompt it replaces
stays at most ``alpha`` (a union bound). A step whose candidates stop on train spends nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from assay.data.prompts import PromptTemplate
from assay.optimizer.config import Acceptance
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.evaluate import Evaluation
from assay.optimizer.records import IterationRecord, SelectionPlan
from assay.scoring.stats import Floats, MaxSignFlipTest

METHOD = (
    "max-statistic paired sign-flip bar over each val look's candidates; "
    "the r-th look spends alpha / 2**r"
)
WORST_SD = math.sqrt(0.5)  # a row's difference of two [0, 1] scores not negatively correlated
WORST_SD_SOURCE = "the worst case for [0, 1] scores"
SMALL_VAL_GAIN = 0.3  # val that cannot confirm a smaller gain confirms one candidate per look
_TIE = 1e-9


def look_alpha(alpha: float, look: int) -> float:
    return alpha / 2.0**look


def next_look(records: Sequence[IterationRecord]) -> int:
    """1 + the looks at val so far (every non-baseline record with a val score is one)."""
    return 1 + sum(1 for r in records if r.status != "baseline" and r.val_candidate is not None)


def detectable_gain(rows: int, alpha: float, power: float, sd: float) -> float | None:
    """The smallest val gain one candidate clears with ``power`` at one-sided ``alpha``: the
    normal approximation, and never below what the exact test allows (``need`` rows all
    better, none worse, give p = 2**-need). None when ``rows`` cannot reach alpha at all."""
    need = math.ceil(-math.log2(alpha) - _TIE)
    if rows <= 0 or need > rows:
        return None
    z = NormalDist().inv_cdf(1.0 - alpha) + NormalDist().inv_cdf(power)
    return min(1.0, max(z * sd / math.sqrt(rows), need / rows))


def plan(rule: Acceptance, val_rows: int, baseline_sd: float | None = None) -> SelectionPlan:
    """The rule as the plan states it; with the baseline's val scores, their sd (a row's
    difference of two independent such scores has sqrt(2) times it) replaces the worst case."""
    sd, source = WORST_SD, WORST_SD_SOURCE
    if baseline_sd is not None:
        sd, source = min(1.0, math.sqrt(2.0) * baseline_sd), "the baseline's val scores"
    first = look_alpha(rule.alpha, 1)
    return SelectionPlan(
        method=METHOD,
        alpha=rule.alpha,
        first_look_alpha=first,
        power=rule.power,
        val_rows=val_rows,
        sd=sd,
        sd_source=source,
        detectable_gain=detectable_gain(val_rows, first, rule.power, sd),
    )


def plan_text(selection: SelectionPlan) -> str:
    return (
        "Selection: a candidate must clear a max-statistic sign-flip bar on val; false accepts "
        f"≤ {selection.alpha:g} per run (alpha / 2**r at the r-th val look). "
        f"{detectable_text(selection)}"
    )


def detectable_text(selection: SelectionPlan) -> str:
    """What val can confirm: the smallest gain, or that it cannot confirm any."""
    rows = f"Val ({selection.val_rows} rows)"
    if selection.detectable_gain is None:
        return (
            f"{rows} cannot confirm any gain at alpha {selection.first_look_alpha:g}: "
            "no candidate can be accepted."
        )
    return (
        f"{rows} detects a gain of {selection.detectable_gain:+.2f} or more "
        f"({selection.power:.0%} power, sd {selection.sd:.2f}: {selection.sd_source})."
    )


def small_data_warning(selection: SelectionPlan) -> str | None:
    gain = selection.detectable_gain
    if gain is not None and gain <= SMALL_VAL_GAIN:
        return None
    return (
        f"val has {selection.val_rows} rows: only large gains can be confirmed, so most runs "
        "will keep the starting prompt; add rows or give val a larger share (--split 0.4,0.3,0.3)"
    )


@dataclass(frozen=True)
class Look:
    """One look at val: each candidate's gain over the best prompt and the bar they faced."""

    number: int
    alpha: float
    rows: int
    gains: list[float]
    bar: float | None  # None: these rows cannot reach alpha
    p_value: float
    differing: int  # rows where some candidate and the best prompt score differently

    @property
    def best(self) -> int:
        return int(np.argmax(self.gains))

    def accepts(self, min_gain: float) -> bool:
        gain = self.gains[self.best]
        return self.bar is not None and gain > 0 and gain >= max(min_gain, self.bar) - _TIE

    def describe(self) -> str:
        many = "candidate" if len(self.gains) == 1 else "candidates"
        compared = f"{len(self.gains)} {many}, {self.rows} val rows"
        if self.bar is None:
            return (
                f"no bar: {self.differing} rows that differ cannot reach alpha {self.alpha:.3g} "
                f"({compared}, val look {self.number})"
            )
        return f"bar {self.bar:+.3f} = {compared}, alpha {self.alpha:.3g} at val look {self.number}"


def judge_look(
    incumbent: Evaluation, candidates: Sequence[Evaluation], number: int, alpha: float, seed: int
) -> Look | None:
    """The look's verdict on the val rows the incumbent and every candidate scored."""
    rows = [
        i
        for i in incumbent.results
        if incumbent.value(i) is not None and all(c.value(i) is not None for c in candidates)
    ]
    if not rows:
        return None
    diffs = [[(c.value(i) or 0.0) - (incumbent.value(i) or 0.0) for i in rows] for c in candidates]
    return judge_diffs(np.asarray(diffs, dtype=np.float64), number, alpha, seed)


def judge_diffs(diffs: Floats, number: int, alpha: float, seed: int) -> Look:
    """The verdict from the k x n paired differences (candidate minus best prompt, per row)."""
    test = MaxSignFlipTest(diffs, seed)
    share = look_alpha(alpha, number)
    gains = [float(g) for g in diffs.mean(axis=1)]
    differing = int(np.any(np.abs(diffs) > _TIE, axis=0).sum())
    return Look(number, share, diffs.shape[1], gains, test.bar(share), test.p_value(), differing)


def settle(record: IterationRecord, look: Look | None, rule: Acceptance) -> IterationRecord:
    """The best candidate's record with the look's numbers, accepted or rejected with why."""
    if look is None:
        return record.model_copy(update={"reason": "no scored val items to compare"})
    gain = look.gains[look.best]
    update = {
        "gain": gain,
        "bar": look.bar,
        "alpha": look.alpha,
        "p_value": look.p_value,
        "val_look": look.number,
        "val_candidates": len(look.gains),
        "val_rows": look.rows,
    }
    if look.accepts(rule.min_gain):
        reason = f"val gain {gain:+.3f} >= {look.describe()}"
        return record.model_copy(update={**update, "status": "accepted", "reason": reason})
    if look.bar is not None and gain >= look.bar - _TIE and gain > 0:
        reason = (
            f"val gain {gain:+.3f} below the minimum gain {rule.min_gain:g} ({look.describe()})"
        )
    elif look.bar is None:
        reason = f"val gain {gain:+.3f}, {look.describe()}"
    else:
        reason = f"val gain {gain:+.3f} below the {look.describe()}"
    return record.model_copy(update={**update, "reason": reason})


async def confirm(
    candidates: Sequence[tuple[IterationRecord, PromptTemplate]],
    state: LoopState,
    ctx: OptimizeContext,
) -> IterationRecord:
    """Score the candidates (best on train first) on val and settle the look; the returned record
    is the look's best candidate, accepted only if it clears the bar. When val is too small to
    confirm a gain below SMALL_VAL_GAIN, only the first candidate is looked at: train chose it,
    and one candidate meets the lowest bar."""
    if not candidates:
        raise ValueError("confirm needs at least one candidate")
    number = next_look(state.records)
    rule = ctx.config.acceptance
    chosen = list(candidates)
    gain = detectable_gain(len(ctx.split.val), look_alpha(rule.alpha, number), rule.power, WORST_SD)
    if gain is None or gain > SMALL_VAL_GAIN:
        chosen = chosen[:1]
    on_val = [await ctx.evaluate(prompt, ctx.split.val) for _, prompt in chosen]
    look = judge_look(state.best_val, on_val, number, rule.alpha, ctx.config.seed + number)
    best = look.best if look is not None else 0
    record = chosen[best][0].model_copy(update={"val_candidate": on_val[best].mean})
    return settle(record, look, rule)
