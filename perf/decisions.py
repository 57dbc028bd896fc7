"""Decisions at a margin: are they wrong no more often than alpha, and what does --adaptive save?

    python -m perf.decisions [--quick] [--reps 500] [--sizes 500,2000,5000] [--edge-n 500]
                             [--peek-reps 200] [--check-reps 10] [--engine-seeds 5]
                             [--engine-rows 500] [--markdown] [--json PATH]

Variants with known true accuracies (0.90, 0.88, 0.75, 0.60; and 0.90 vs 0.85, exactly at the
margin's edge) score each item 0/1, or a Beta in [0, 1], or (edge only) unbounded values with
normal noise. One latent ease per item shifts every variant's success probability (a probit
model whose marginal mean is the stated accuracy), so variants are correlated as on real data.
Margin 0.05, alpha 0.05, the reference the best variant or ``--baseline acc90``.

Part A (statistics). Each repetition is decided by the product's code. The adaptive run replays
``benchmark.adaptive`` (``round_ends``; each round the verdicts of the active variants, and
``still_open`` keeps the reference and the unsettled) and then its report: the final verdicts of
the variants that ran to the end, and for a variant stopped early the verdict that stopped it,
against that round's reference (``with_stopping_verdicts``). A claim is judged against the
reference it names. The baseline, in the same run: the full run, ``decide_all`` on every item
with the fixed-n test. "Peeking" is the fixed-n test used as the adaptive stopping rule (edge
only). Errors: a non-inferior claim when the true difference is <= -margin, an inferior claim
when it is >= -margin, a superior claim when it is <= 0. Each repetition's run seed is 0.
Two shortcuts keep it within minutes, each checked against the unshortened product code in the
same run (a mismatch fails the benchmark):
- the adaptive verdicts call ``confidence_sequence`` and ``outcome_of`` (what
  ``compare_sequential`` calls) without the anytime p-value no verdict uses, and the report
  takes a stopped variant's verdict from the round that stopped it; the first ``--check-reps``
  repetitions are also run as the product runs them (``prefix_decisions`` and ``still_open``
  each round, the report by ``decide``) and must agree exactly: stopping points, every round's
  verdicts, the report's verdicts, references, intervals and recommendation;
- the fixed-n test's 10,000 sign flips are drawn once per (n, seed), equal to the product's
  draws (checked), and multiplied in one batch; the first two repetitions are also decided
  without the batch.

Part B (the real engine). ``assay.api.run`` against the scripted OpenAI-compatible server on a
generated label dataset, adaptive and full, per seed. The server answers right or wrong by
``right_answer`` (a hash of seed, model and item), which also gives Part B's simulation its
scores: the engine's calls, stopping points, verdicts (with the reference each names),
intervals and recommendation must equal those of the product's rounds and report on the same
per-item scores, and the shortened replay must give the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from assay import api
from assay.analysis.compare import Decision, DecisionSetup, decide, decision_inputs, recommend
from assay.analysis.decisions import (
    DecisionConfig,
    DecisionInputs,
    Decisions,
    Outcome,
    SampleValues,
    VariantDecision,
    decide_all,
    number_of_comparisons,
    outcome_of,
    prefix_decisions,
    reference_of,
    round_ends,
    seeded_order,
    still_open,
)
from assay.analysis.summary import VariantSummary
from assay.benchmark.config import RunConfig
from assay.data import load_dataset
from assay.engine.engine import EngineConfig
from assay.evaluation.config import ScoringConfig
from assay.providers.specs import resolve_model
from assay.scoring.sequential import confidence_sequence
from assay.scoring.stats import (
    _CHUNK_CELLS,
    PERMUTATION_RESAMPLES,
    Aggregate,
    PairedComparison,
    SignFlipTest,
)
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from perf.common import machine_line, print_table

Floats = NDArray[np.float64]
Kind = Literal["0/1", "beta", "normal"]

MARGIN = 0.05
ALPHA = 0.05
RUN_SEED = 0
SPREAD = 1.0  # sd of the latent ease, in probit units: items differ a lot, as real data do
KAPPA = 10.0  # Beta concentration around an item's mean score
NOISE_SD = 0.3  # the unbounded kind's noise around an item's mean score
FOUR = (0.90, 0.88, 0.75, 0.60)
EDGE = (0.90, 0.85)  # 0.85 - 0.90 is exactly -margin: every claim about it is an error
TOKENS = (40, 2)  # input and output tokens of each scripted reply
PRICES = {  # $ per million input, output tokens: the more accurate, the dearer
    "acc90": (3.0, 12.0),
    "acc88": (1.0, 4.0),
    "acc85": (1.0, 4.0),
    "acc75": (0.5, 2.0),
    "acc60": (0.25, 1.0),
}
CLAIMS = ("non-inferior", "inferior", "superior")
FLIP = {"positive": "negative", "negative": "positive"}
ITEM = re.compile(r"Item (\d+):")
PROMPT = "Classify the sentiment of this review: {{input}}\nAnswer positive or negative.\n"


def label_of(accuracy: float) -> str:
    return f"acc{round(accuracy * 100)}"


def accuracy_of(label: str) -> float:
    return int(label.removeprefix("compat/").removeprefix("acc")) / 100


def call_cost(label: str) -> float:
    per_in, per_out = PRICES[label.removeprefix("compat/")]
    return (TOKENS[0] * per_in + TOKENS[1] * per_out) / 1e6


def offset(accuracy: float) -> float:
    """The probit offset whose success rate, averaged over the items' ease, is ``accuracy``."""
    return float(special.ndtri(accuracy)) * math.sqrt(1.0 + SPREAD**2)


# --------------------------------------------------------------------------- simulated scores


@dataclass(frozen=True)
class Scenario:
    kind: Kind
    n: int
    accuracies: tuple[float, ...]
    baseline: bool  # --baseline the first (most accurate) variant; else the best is the reference
    reps: int
    peek_reps: int = 0

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label_of(a) for a in self.accuracies)

    @property
    def name(self) -> str:
        ref = f"--baseline {self.labels[0]}" if self.baseline else "best"
        edge = "edge 0.90 vs 0.85, " if self.accuracies == EDGE else ""
        return f"{edge}{self.kind}, n={self.n:,}, {ref}"


def simulate(sc: Scenario, rng: np.random.Generator) -> Floats:
    """Scores (repetition, variant, item), items in the order the run draws them."""
    ease = rng.standard_normal((sc.reps, 1, sc.n))
    offsets = np.asarray([offset(a) for a in sc.accuracies]).reshape(1, -1, 1)
    mean: Floats = special.ndtr(offsets + SPREAD * ease)  # each item's success probability
    if sc.kind == "0/1":
        return (rng.random(mean.shape) < mean).astype(np.float64)
    if sc.kind == "beta":
        mean = np.clip(mean, 1e-6, 1 - 1e-6)  # a Beta needs both shapes > 0
        scores: Floats = rng.beta(mean * KAPPA, (1 - mean) * KAPPA)
        return scores
    return mean + rng.normal(0.0, NOISE_SD, mean.shape)


def _uniform(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def right_answer(model: str, item: int, seed: int) -> bool:
    """Part B's scripted model: right on ``item`` with its accuracy, under the item's ease."""
    ease = float(special.ndtri(_uniform(seed, "ease", item)))
    chance = float(special.ndtr(offset(accuracy_of(model)) + SPREAD * ease))
    return _uniform(seed, model, item) < chance


# --------------------------------------------------------------------------- the product's rules


@dataclass(frozen=True)
class Setting:
    """One run's decision settings: the flags ``assay run`` is given."""

    labels: tuple[str, ...]
    n: int
    baseline: str | None
    seed: int = RUN_SEED

    def config(self, adaptive: bool) -> DecisionConfig:
        return DecisionConfig(margin=MARGIN, baseline=self.baseline, adaptive=adaptive, alpha=ALPHA)

    @property
    def k(self) -> int:
        return number_of_comparisons(len(self.labels), self.baseline is not None)


@dataclass(frozen=True)
class Verdicts:
    reference: int
    outcomes: dict[int, Outcome]  # variant index -> verdict, for the variants compared
    bounds: dict[int, tuple[float | None, float | None]]
    against: dict[int, int] = field(default_factory=dict)  # judged against another reference

    def reference_for(self, v: int) -> int:
        """The variant ``v``'s claim was made against (a stopped variant: its round's best)."""
        return self.against.get(v, self.reference)


Rule = Callable[[Sequence[int], Sequence[int]], Verdicts]  # (samples seen, variants compared)


def means_of(
    scores: Floats, seen: Sequence[int], members: Sequence[int], labels: Sequence[str]
) -> dict[str, float | None]:
    return {labels[v]: float(scores[v, : seen[v]].mean()) for v in members}


def sequential_rule(scores: Floats, setting: Setting) -> Rule:
    """The adaptive verdicts from the functions ``compare_sequential`` calls."""
    alpha = ALPHA / setting.k

    def rule(seen: Sequence[int], members: Sequence[int]) -> Verdicts:
        means = means_of(scores, seen, members, setting.labels)
        ref = setting.labels.index(reference_of(means, setting.baseline) or "")
        outcomes: dict[int, Outcome] = {}
        bounds: dict[int, tuple[float | None, float | None]] = {}
        for v in members:
            if v == ref:
                outcomes[v] = "reference"
                continue
            shared = min(seen[v], seen[ref])
            bounds[v] = _sequence_bounds(scores[ref, :shared], scores[v, :shared], alpha, setting)
            outcomes[v] = outcome_of(_interval(*bounds[v]), MARGIN)
        return Verdicts(ref, outcomes, bounds)

    return rule


def _sequence_bounds(
    a: Floats, b: Floats, alpha: float, setting: Setting
) -> tuple[float | None, float | None]:
    bounded = bool(np.all((a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)))
    low, high = confidence_sequence(b - a, alpha, bounded, max(setting.n, 1))
    if len(a) == 0 or not (math.isfinite(low) and math.isfinite(high)):
        return None, None
    return low, high


def _interval(low: float | None, high: float | None) -> PairedComparison:
    return PairedComparison(
        n=0, mean_a=None, mean_b=None, diff=None, ci_low=low, ci_high=high, p_value=None,
        significant=False, samples_needed=None,
    )  # fmt: skip


def product_rule(scores: Floats, setting: Setting, order: Sequence[str], adaptive: bool) -> Rule:
    """``decide_all`` itself, given what ``still_open`` gives it: sample id -> value."""
    config = setting.config(adaptive)

    def rule(seen: Sequence[int], members: Sequence[int]) -> Verdicts:
        labels = setting.labels
        values = {
            labels[v]: dict(zip(order[: seen[v]], scores[v, : seen[v]].tolist(), strict=True))
            for v in members
        }
        inputs = DecisionInputs(
            means=means_of(scores, seen, members, labels),
            cost_per_sample_usd=dict.fromkeys(values),
            calls_per_sample=1,
            samples_left=setting.n - max(seen),
            horizon=max(setting.n, 1),
            seed=setting.seed,
            n_variants=len(labels),
        )
        decisions = decide_all(values, config, inputs)
        assert decisions is not None
        return verdicts_of(decisions, labels)

    return rule


def verdicts_of(decisions: Decisions, labels: Sequence[str]) -> Verdicts:
    index = {label: i for i, label in enumerate(labels)}
    outcomes = {index[d.variant]: d.outcome for d in decisions.variants}
    bounds = {
        index[d.variant]: (d.comparison.ci_low, d.comparison.ci_high)
        for d in decisions.variants
        if d.comparison is not None
    }
    against = {index[d.variant]: index[d.against] for d in decisions.variants if d.against}
    return Verdicts(index[decisions.reference], outcomes, bounds, against)


def as_decisions(verdicts: Verdicts, setting: Setting, seen: Sequence[int]) -> Decisions:
    """The verdicts as the product's ``Decisions`` (outcomes, references and sample counts)."""
    labels = setting.labels
    rows = [
        VariantDecision(
            variant=labels[v], outcome=outcome, samples=seen[v],
            against=labels[verdicts.against[v]] if v in verdicts.against else None,
        )
        for v, outcome in verdicts.outcomes.items()
    ]  # fmt: skip
    return Decisions(
        reference=labels[verdicts.reference], baseline=setting.baseline is not None,
        margin=MARGIN, alpha=ALPHA, comparisons=setting.k, method="-", variants=rows,
    )  # fmt: skip


@dataclass(frozen=True)
class Replay:
    seen: tuple[int, ...]  # samples each variant was scored on
    final: Verdicts  # the run's report: a stopped variant keeps the verdict that stopped it
    looks: tuple[Verdicts, ...]  # each round's verdicts on the active variants


def replay(rule: Rule, setting: Setting) -> Replay:
    """``execute_adaptive``, then its report: each round scores the active variants on the next
    samples of the seeded order and ``still_open`` keeps the reference and the unsettled."""
    n_variants = len(setting.labels)
    seen, active = [0] * n_variants, list(range(n_variants))
    looks: list[Verdicts] = []
    stopped_by: dict[int, Verdicts] = {}  # variant -> the round's verdicts that stopped it
    for end in round_ends(setting.n):
        for v in active:
            seen[v] = end
        look = rule(seen, active)
        looks.append(look)
        still = open_variants(look, active, setting, seen)
        stopped_by.update({v: look for v in active if v not in still})
        active = still
        if len(active) <= 1:
            break
    final = stopping_verdicts(rule(seen, range(n_variants)), stopped_by, seen)
    return Replay(tuple(seen), final, tuple(looks))


def open_variants(
    look: Verdicts, active: Sequence[int], setting: Setting, seen: Sequence[int]
) -> list[int]:
    """The product's ``still_open`` on a round's verdicts."""
    labels = setting.labels
    still = still_open(as_decisions(look, setting, seen), [labels[v] for v in active])
    return [labels.index(label) for label in still]


def stopping_verdicts(
    report: Verdicts, stopped_by: dict[int, Verdicts], seen: Sequence[int]
) -> Verdicts:
    """``with_stopping_verdicts`` from the rounds already decided: a variant stopped before the
    run's last round (and not the report's reference) keeps the verdict of the round that
    stopped it, against that round's reference."""
    early = {
        v: look for v, look in stopped_by.items() if seen[v] < max(seen) and v != report.reference
    }
    outcomes = {**report.outcomes, **{v: look.outcomes[v] for v, look in early.items()}}
    bounds = {**report.bounds, **{v: look.bounds[v] for v, look in early.items()}}
    against = {v: look.reference for v, look in early.items() if look.reference != report.reference}
    return Verdicts(report.reference, outcomes, bounds, against)


def product_replay(
    scores: Floats, setting: Setting, order: Sequence[str]
) -> tuple[Replay, Decision]:
    """The product's own adaptive run on these scores: each round as ``open_after_round``
    decides it (``prefix_decisions``, ``still_open``), then the report as ``analyse`` makes
    it (``decide``, which keeps each stopped variant's verdict: ``with_stopping_verdicts``)."""
    labels, setup = setting.labels, product_setup(setting, adaptive=True)
    values = {
        label: dict(zip(order, scores[v].tolist(), strict=True)) for v, label in enumerate(labels)
    }
    seen, active = [0] * len(labels), list(labels)
    looks: list[Verdicts] = []
    for end in round_ends(setting.n):
        for label in active:
            seen[labels.index(label)] = end
        prefix = set(order[:end])
        samples = {label: _cut(values[label], prefix) for label in active}
        decisions = prefix_decisions(
            samples, prefix, setup.config, decision_inputs([], samples, setup)
        )
        assert decisions is not None
        looks.append(verdicts_of(decisions, labels))
        active = still_open(decisions, active)
        if len(active) <= 1:
            break
    report = product_report(scores, setting, order, seen, adaptive=True)
    assert report.decisions is not None
    return Replay(tuple(seen), verdicts_of(report.decisions, labels), tuple(looks)), report


def _cut(values: SampleValues, prefix: set[str]) -> SampleValues:
    return {k: x for k, x in values.items() if k in prefix}


def product_setup(setting: Setting, adaptive: bool) -> DecisionSetup:
    return DecisionSetup(
        config=setting.config(adaptive), seed=setting.seed, n_samples=setting.n, repeats=1,
        n_variants=len(setting.labels),
    )  # fmt: skip


def product_report(
    scores: Floats, setting: Setting, order: Sequence[str], seen: Sequence[int], adaptive: bool
) -> Decision:
    """``analyse``'s comparison of a run whose variants were scored on the first ``seen[v]``
    samples of the seeded order (one repeat each)."""
    labels = setting.labels
    values = {
        label: {
            (sample, 0): float(x)
            for sample, x in zip(order[: seen[v]], scores[v, : seen[v]], strict=True)
        }
        for v, label in enumerate(labels)
    }
    means = means_of(scores, seen, range(len(labels)), labels)
    summaries = [_summary(label, means[label] or 0.0, seen[v]) for v, label in enumerate(labels)]
    setup = dataclasses.replace(product_setup(setting, adaptive), n_variants=None)  # as stored
    return decide(summaries, values, setup)


def recommended_in(decision: Decision) -> str:
    """The variant a recommendation names ("Recommended: X, shown ..." or "... X (the ...")."""
    return decision.recommendation.split()[1].rstrip(",.")


# --------------------------------------------------------------------------- fixed-n sign flips


_ORIGINAL_FLIPS = SignFlipTest._flips


def product_signs(n: int, seed: int) -> Floats:
    """The sign matrix ``SignFlipTest`` draws for n differences and this seed."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // n)
    chunks = [
        rng.choice(np.array([1.0, -1.0]), size=(min(rows, PERMUTATION_RESAMPLES - start), n))
        for start in range(0, PERMUTATION_RESAMPLES, rows)
    ]
    return np.concatenate(chunks)


@dataclass
class FlipCache:
    """Each (n, seed)'s sign matrix drawn once; prefetched products looked up by the diffs."""

    signs: dict[tuple[int, int], tuple[Floats, Floats]] = field(default_factory=dict)
    prefetched: dict[bytes, Floats] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def matrix(self, n: int, seed: int) -> tuple[Floats, Floats]:
        if (n, seed) not in self.signs:
            signs = product_signs(n, seed)
            self.signs[(n, seed)] = (signs, signs.sum(axis=1))
            _check_signs(signs, n, seed)
        return self.signs[(n, seed)]

    def prefetch(self, columns: Floats, seed: int) -> None:
        """``signs @ d`` for every column d (n x m) in one matrix product."""
        signs, _ = self.matrix(columns.shape[0], seed)
        flipped = signs @ columns
        for j in range(columns.shape[1]):
            self.prefetched[columns[:, j].tobytes()] = flipped[:, j].copy()

    def flips(self, diffs: Floats, seed: int) -> tuple[Floats, Floats]:
        signs, sums = self.matrix(len(diffs), seed)
        found = self.prefetched.get(diffs.tobytes())
        self.hits += found is not None
        self.misses += found is None
        return (signs @ diffs if found is None else found), sums

    def clear(self) -> None:
        self.signs.clear()
        self.prefetched.clear()


def _check_signs(signs: Floats, n: int, seed: int) -> None:
    probe_diffs = np.random.default_rng(n).integers(-1, 2, n).astype(np.float64)
    probe = SignFlipTest.__new__(SignFlipTest)
    probe.exact = False
    flipped, sums = _ORIGINAL_FLIPS(probe, probe_diffs, seed)
    if not (np.array_equal(signs @ probe_diffs, flipped) and np.array_equal(signs.sum(1), sums)):
        raise RuntimeError(f"the product draws other sign flips for n={n}: update product_signs")


@contextlib.contextmanager
def flips_from(
    flips: Callable[[SignFlipTest, Floats, int], tuple[Floats, Floats]],
) -> Iterator[None]:
    """``SignFlipTest`` draws its flips with ``flips`` for a while; every other step is its own."""
    saved = SignFlipTest._flips
    SignFlipTest._flips = flips  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        SignFlipTest._flips = saved  # type: ignore[method-assign]


def batched_flips(cache: FlipCache) -> contextlib.AbstractContextManager[None]:
    def flips(test: SignFlipTest, diffs: Floats, seed: int) -> tuple[Floats, Floats]:
        return _ORIGINAL_FLIPS(test, diffs, seed) if test.exact else cache.flips(diffs, seed)

    return flips_from(flips)


def prefetch_full_runs(cache: FlipCache, data: Floats, setting: Setting, order: list[str]) -> None:
    """The differences ``compare_fixed`` will test (by sample id, against each repetition's
    reference), multiplied by the signs in one batch."""
    by_id = sorted(range(setting.n), key=order.__getitem__)
    everyone, full = range(len(setting.labels)), [setting.n] * len(setting.labels)
    columns = []
    for scores in data:
        means = means_of(scores, full, everyone, setting.labels)
        ref = setting.labels.index(reference_of(means, setting.baseline) or "")
        columns += [(scores[v] - scores[ref])[by_id] for v in everyone if v != ref]
    for start in range(0, len(columns), 500):  # bounds the product's memory
        cache.prefetch(np.stack(columns[start : start + 500], axis=1), setting.seed)


# --------------------------------------------------------------------------- what a run claims


def wrong_claims(final: Verdicts, accuracies: Sequence[float]) -> set[str]:
    """The claims the true accuracies contradict, each against the reference it names (the
    margin's edge counts against a claim)."""
    eps = 1e-9
    wrong: set[str] = set()
    for v, outcome in final.outcomes.items():
        diff = accuracies[v] - accuracies[final.reference_for(v)]
        holds = {
            "non-inferior": diff > -MARGIN + eps,
            "inferior": diff < -MARGIN - eps,
            "superior": diff > eps,
        }
        if outcome in holds and not holds[outcome]:
            wrong.add(outcome)
    return wrong


def recommended(final: Verdicts, seen: Sequence[int], scores: Floats, setting: Setting) -> str:
    """The variant ``recommend`` names, from the run's summaries and verdicts."""
    labels = setting.labels
    means = means_of(scores, seen, range(len(labels)), labels)
    summaries = [_summary(label, means[label] or 0.0, seen[i]) for i, label in enumerate(labels)]
    return recommend(summaries, as_decisions(final, setting, seen)).split()[1].rstrip(",.")


def _summary(label: str, mean: float, n: int) -> VariantSummary:
    agg = Aggregate(
        mean=mean, ci_low=None, ci_high=None, n_scored=n, n_unscored=0, n_errors=0, std=None
    )
    cost = call_cost(label)
    return VariantSummary(
        variant=label, model=f"compat/{label}", n_requests=n, n_errors=0, score=agg,
        cost_per_1k_usd=cost * 1000, task_cost_usd=cost * n, spent_usd=cost * n,
        judge_cost_usd=0.0, total_cost_usd=cost * n, latency_p50_ms=None, latency_p95_ms=None,
        latency_mean_ms=None, output_tokens_per_s=None, input_tokens_per_request=None,
        output_tokens_per_request=None,
    )  # fmt: skip


def spend(seen: Sequence[int], labels: Sequence[str]) -> tuple[int, float]:
    """Calls made and their dollars."""
    return sum(seen), sum(s * call_cost(label) for s, label in zip(seen, labels, strict=True))


# --------------------------------------------------------------------------- Part A


@dataclass
class Tally:
    """Repetitions with at least one wrong claim of each kind (and of any kind)."""

    reps: int = 0
    wrong: Counter[str] = field(default_factory=Counter)

    def add(self, wrong: set[str]) -> None:
        self.reps += 1
        self.wrong.update(wrong)
        self.wrong["any"] += bool(wrong)


@dataclass
class ScenarioResult:
    scenario: Scenario
    tallies: dict[str, Tally] = field(default_factory=dict)
    calls_ratio: list[float] = field(default_factory=list)
    dollars_ratio: list[float] = field(default_factory=list)
    stops: list[tuple[int, ...]] = field(default_factory=list)
    same_recommendation: int = 0
    recommends: dict[str, Counter[str]] = field(default_factory=dict)
    stopped_against_other: int = 0  # runs reporting a variant against a round's best, not the final
    reference_stopped: int = 0  # runs whose final reference is a variant stopped early
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0


RULES = {
    "adaptive": "adaptive (confidence sequence)",
    "full": "full run (fixed n)",
    "peeking": "fixed n at every round (peeking)",
}


def run_scenario(sc: Scenario, cache: FlipCache, check_reps: int) -> ScenarioResult:
    start = time.perf_counter()
    setting = Setting(sc.labels, sc.n, sc.labels[0] if sc.baseline else None)
    data = simulate(sc, np.random.default_rng(zlib.crc32(sc.name.encode())))
    order = seeded_order([str(i + 1) for i in range(sc.n)], setting.seed)
    result = ScenarioResult(sc, {rule: Tally() for rule in RULES})
    result.recommends = {"adaptive": Counter(), "full": Counter()}
    with batched_flips(cache):
        prefetch_full_runs(cache, data, setting, order)
        for r, scores in enumerate(data):
            _one_repetition(result, scores, setting, order, check=r < check_reps)
            if r < 2:
                _check_batched(result, scores, setting, order)
            if r < sc.peek_reps:
                peek = replay(product_rule(scores, setting, order, False), setting)
                result.tallies["peeking"].add(wrong_claims(peek.final, sc.accuracies))
    cache.clear()
    result.seconds = time.perf_counter() - start
    return result


def _one_repetition(
    result: ScenarioResult, scores: Floats, setting: Setting, order: list[str], check: bool
) -> None:
    sc, n, labels = result.scenario, setting.n, setting.labels
    adaptive = replay(sequential_rule(scores, setting), setting)
    pick = recommended(adaptive.final, adaptive.seen, scores, setting)
    if check:
        _check_replay(result, adaptive, pick, scores, setting, order)
    full = product_rule(scores, setting, order, False)([n] * len(labels), range(len(labels)))
    result.tallies["adaptive"].add(wrong_claims(adaptive.final, sc.accuracies))
    result.tallies["full"].add(wrong_claims(full, sc.accuracies))
    calls, dollars = spend(adaptive.seen, labels)
    full_calls, full_dollars = spend([n] * len(labels), labels)
    result.calls_ratio.append(calls / full_calls)
    result.dollars_ratio.append(dollars / full_dollars)
    result.stops.append(adaptive.seen)
    picks = (pick, recommended(full, [n] * len(labels), scores, setting))
    result.recommends["adaptive"][picks[0]] += 1
    result.recommends["full"][picks[1]] += 1
    result.same_recommendation += picks[0] == picks[1]
    result.stopped_against_other += bool(adaptive.final.against)
    result.reference_stopped += adaptive.seen[adaptive.final.reference] < max(adaptive.seen)


def _check_replay(
    result: ScenarioResult,
    fast: Replay,
    pick: str,
    scores: Floats,
    setting: Setting,
    order: list[str],
) -> None:
    """The shortened replay equals the product's own rounds and report on the same scores."""
    result.checked += 1
    same, report = product_replay(scores, setting, order)
    if same != fast or recommended_in(report) != pick:
        result.mismatches.append(
            f"{result.scenario.name}: the adaptive replay differs from the product's"
        )


def _check_batched(
    result: ScenarioResult, scores: Floats, setting: Setting, order: list[str]
) -> None:
    """The full run's verdicts with the batched flips equal those of the product's own."""
    full = [setting.n] * len(setting.labels)
    everyone = range(len(setting.labels))
    batched = product_rule(scores, setting, order, False)(full, everyone)
    with flips_from(_ORIGINAL_FLIPS):
        own = product_rule(scores, setting, order, False)(full, everyone)
    if not _close(batched, own):
        result.mismatches.append(f"{result.scenario.name}: batched sign flips decide otherwise")


def _close(a: Verdicts, b: Verdicts) -> bool:
    """The same verdicts against the same references, the intervals equal within 1e-9."""
    if (a.reference, a.outcomes, a.against) != (b.reference, b.outcomes, b.against):
        return False
    if a.bounds.keys() != b.bounds.keys():
        return False
    pairs = [(x, y) for v in a.bounds for x, y in zip(a.bounds[v], b.bounds[v], strict=True)]
    return all(x == y or (x is not None and y is not None and abs(x - y) < 1e-9) for x, y in pairs)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    kinds: tuple[Kind, ...] = ("0/1", "beta")
    main = [
        Scenario(kind, n, FOUR, baseline, args.reps)
        for n in args.sizes
        for kind in kinds
        for baseline in (False, True)
    ]
    edge_kinds: tuple[Kind, ...] = ("0/1", "beta", "normal")
    return main + [
        Scenario(k, args.edge_n, EDGE, True, args.reps, args.peek_reps) for k in edge_kinds
    ]


def format_rate(count: int, reps: int) -> str:
    return f"{count} ({count / reps:.1%})" if reps else "-"


def clopper_pearson(count: int, reps: int) -> tuple[float, float]:
    """The exact two-sided 95% interval of a rate seen ``count`` times in ``reps``."""
    low = 0.0 if count == 0 else float(stats.beta.ppf(0.025, count, reps - count + 1))
    high = 1.0 if count == reps else float(stats.beta.ppf(0.975, count + 1, reps - count))
    return low, high


def error_rows(results: Sequence[ScenarioResult]) -> list[list[str]]:
    rows = []
    for result in results:
        for rule, title in RULES.items():
            tally = result.tallies[rule]
            if not tally.reps:
                continue
            low, high = clopper_pearson(tally.wrong["any"], tally.reps)
            versus = "below" if high <= ALPHA else "above" if low > ALPHA else "consistent"
            rows.append(
                [result.scenario.name, title, str(tally.reps)]
                + [format_rate(tally.wrong[claim], tally.reps) for claim in (*CLAIMS, "any")]
                + [f"[{low:.3f}, {high:.3f}]", versus]
            )
    return rows


ERROR_COLUMNS = [
    "scenario", "rule", "reps", "non-inferior wrong", "inferior wrong", "superior wrong",
    "any wrong", "95% CI of any", "vs alpha",
]  # fmt: skip


def shares(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{label} {n / total:.0%}" for label, n in counts.most_common())


def spend_rows(results: Sequence[ScenarioResult]) -> list[list[str]]:
    rows = []
    for r in results:
        reps, labels = len(r.calls_ratio), r.scenario.labels
        medians = np.median(np.asarray(r.stops), axis=0)
        rows.append([
            r.scenario.name, str(reps), f"{np.mean(r.calls_ratio):.1%}",
            f"{1 - np.mean(r.calls_ratio):.0%}", f"{np.mean(r.dollars_ratio):.1%}",
            ", ".join(f"{label} {m:,.0f}" for label, m in zip(labels, medians, strict=True)),
            format_rate(r.same_recommendation, reps), shares(r.recommends["adaptive"]),
            shares(r.recommends["full"]), format_rate(r.stopped_against_other, reps),
        ])  # fmt: skip
    return rows


SPEND_COLUMNS = [
    "scenario", "reps", "calls vs full", "calls saved", "$ vs full", "median samples scored",
    "same recommendation", "adaptive recommends", "full recommends",
    "a verdict against a round's best",
]  # fmt: skip


# --------------------------------------------------------------------------- Part B


class LabelModel:
    """The scripted server's models: ``right_answer`` decides each reply."""

    def __init__(self, seed: int, truth: dict[int, str]) -> None:
        self.seed = seed
        self.truth = truth

    def __call__(self, request: ChatRequest) -> Action:
        found = ITEM.search(request.last_user_text)
        item = int(found.group(1)) if found else -1
        truth = self.truth.get(item, "positive")
        answer = truth if right_answer(request.model, item, self.seed) else FLIP[truth]
        return reply(answer, input_tokens=TOKENS[0], output_tokens=TOKENS[1])


def _truth(rows: int) -> dict[int, str]:
    return {i: "positive" if _uniform("label", i) < 0.5 else "negative" for i in range(rows)}


def write_dataset(path: Path, rows: int) -> dict[int, str]:
    """A label JSONL whose inputs name their item; returns each item's right answer."""
    truth = _truth(rows)
    with path.open("w") as f:
        for i, label in truth.items():
            f.write(json.dumps({"input": f"Item {i}: a film, scene {i % 97}.", "output": label}))
            f.write("\n")
    return truth


def write_prices(path: Path, labels: Sequence[str]) -> Path:
    prices = {
        label: dict(
            zip(("input_per_mtok", "output_per_mtok"), PRICES[label.split("/")[1]], strict=True)
        )
        for label in labels
    }
    path.write_text(json.dumps({"prices": prices}))
    return path


@dataclass(frozen=True)
class EngineCase:
    """One seed's data, the same for the engine and the simulation."""

    seed: int
    data: Path
    prompt: Path
    prices: Path
    labels: tuple[str, ...]
    order: list[str]  # sample ids in the run's seeded order
    scores: Floats  # (variant, item in the seeded order): what the server's answers score


def engine_case(seed: int, rows: int, work: Path, labels: tuple[str, ...]) -> EngineCase:
    data = work / "data.jsonl"
    if not data.exists():
        write_dataset(data, rows)
    prompt = work / "prompt.md"
    prompt.write_text(PROMPT)
    item_of = {}
    for sample in load_dataset(data).iter_samples():
        found = ITEM.search(sample.input_text())
        assert found is not None
        item_of[sample.id] = int(found.group(1))
    order = seeded_order(item_of, seed)
    scores = np.asarray(
        [
            [float(right_answer(label.split("/")[1], item_of[i], seed)) for i in order]
            for label in labels
        ]
    )
    return EngineCase(
        seed, data, prompt, write_prices(work / "prices.json", labels), labels, order, scores
    )


@dataclass
class EngineRow:
    seed: int
    baseline: str | None
    adaptive: bool
    calls: dict[str, int]  # requests the server received, by variant
    samples: dict[str, int]  # samples each variant was scored on (the report's)
    outcomes: dict[str, str]
    recommends: str
    cost_usd: float | None
    full_cost_usd: float | None  # an adaptive run's own estimate of the full run's cost
    agrees: bool  # calls, samples, verdicts, intervals and recommendation equal the simulation's
    differences: list[str]
    wall_s: float = 0.0
    against: dict[str, str] = field(default_factory=dict)  # a verdict against a round's best


def run_engine(
    case: EngineCase, server: ScriptedServer, store: Path, baseline: str | None, adaptive: bool
) -> EngineRow:
    models = [resolve_model(label, base_url=server.base_url) for label in case.labels]
    config = RunConfig(
        data=str(case.data), prompts=[str(case.prompt)], models=models,
        scoring=ScoringConfig(metrics=["label"]), seed=case.seed,
        decision=DecisionConfig(margin=MARGIN, baseline=baseline, adaptive=adaptive, alpha=ALPHA),
        engine=EngineConfig(use_cache=False),
    )  # fmt: skip
    before, start = server.count, time.perf_counter()
    report = api.run(config, store=store, prices=case.prices)
    wall_s = time.perf_counter() - start
    calls = Counter(f"compat/{r.model}" for r in server.requests[before:])
    assert report.decisions is not None
    spent = report.decisions.adaptive
    row = EngineRow(
        case.seed, baseline, adaptive, {label: calls[label] for label in case.labels},
        {d.variant: d.samples for d in report.decisions.variants},
        {d.variant: d.outcome for d in report.decisions.variants},
        report.recommendation.split()[1].rstrip(",."),
        spent.cost_usd if spent else report.total_cost_usd,
        spent.full_cost_usd if spent else report.total_cost_usd, False, [], wall_s,
    )  # fmt: skip
    row.against = {d.variant: d.against for d in report.decisions.variants if d.against}
    row.differences = differences(row, report.decisions, simulate_case(case, baseline, adaptive))
    if spent is not None and spent.calls != sum(calls.values()):
        row.differences.append("calls in the report")
    row.agrees = not row.differences
    return row


@dataclass(frozen=True)
class Simulated:
    seen: tuple[int, ...]
    final: Verdicts
    recommends: str
    fast_agrees: bool = True  # the shortened replay (Part A's) gives the same run


def simulate_case(case: EngineCase, baseline: str | None, adaptive: bool) -> Simulated:
    """The product's rounds and report on the scores the server's answers earn."""
    n, labels = len(case.order), case.labels
    setting = Setting(labels, n, baseline, seed=case.seed)
    if not adaptive:
        seen = (n,) * len(labels)
        report = product_report(case.scores, setting, case.order, seen, adaptive=False)
        assert report.decisions is not None
        return Simulated(seen, verdicts_of(report.decisions, labels), recommended_in(report))
    run, report = product_replay(case.scores, setting, case.order)
    fast = replay(sequential_rule(case.scores, setting), setting)
    return Simulated(run.seen, run.final, recommended_in(report), fast == run)


def differences(row: EngineRow, decisions: Decisions, sim: Simulated) -> list[str]:
    labels = list(row.calls)
    checks = {
        "calls": [row.calls[label] for label in labels] == list(sim.seen),
        "samples": [row.samples[label] for label in labels] == list(sim.seen),
        "verdicts": _close(verdicts_of(decisions, labels), sim.final),
        "recommendation": row.recommends == sim.recommends,
        "fast replay": sim.fast_agrees,
    }
    return [name for name, ok in checks.items() if not ok]


def engine_rows(seeds: int, rows: int) -> list[EngineRow]:
    """Per seed: the best as reference, then --baseline acc90; each adaptive, then full."""
    labels = tuple(f"compat/{label_of(a)}" for a in FOUR)
    out = []
    with tempfile.TemporaryDirectory(prefix="assay-decisions-") as tmp:
        for seed in range(1, seeds + 1):
            case = engine_case(seed, rows, Path(tmp), labels)
            with ScriptedServer(LabelModel(seed, _truth(rows))) as server:
                for baseline in (None, labels[0]):
                    store = Path(tmp) / f"store-{seed}"
                    pair = [run_engine(case, server, store, baseline, a) for a in (True, False)]
                    _check_estimate(*pair)
                    out += pair
    return out


def _check_estimate(adaptive: EngineRow, full: EngineRow) -> None:
    """The adaptive run's estimate of a full run's cost is what the full run cost."""
    estimate, cost = adaptive.full_cost_usd, full.cost_usd
    if estimate is None or cost is None or abs(estimate - cost) > 1e-9:
        adaptive.differences.append("full-run $ estimate")
        adaptive.agrees = False


SHORT = {"reference": "ref", "non-inferior": "NI", "inferior": "inf", "superior": "sup",
         "not settled": "open"}  # fmt: skip


def engine_table_rows(rows: Sequence[EngineRow]) -> list[list[str]]:
    out = []
    full_cost = {(r.seed, r.baseline): r.cost_usd for r in rows if not r.adaptive}
    for r in rows:
        full = full_cost.get((r.seed, r.baseline))
        versus = "-" if r.cost_usd is None or not full else f"{r.cost_usd / full:.0%}"
        out.append([
            str(r.seed), r.baseline.split("/")[1] if r.baseline else "best",
            "adaptive" if r.adaptive else "full (baseline)", f"{sum(r.calls.values()):,}",
            "-" if r.cost_usd is None else f"{r.cost_usd:.4f}", versus,
            "/".join(str(r.samples[label]) for label in r.calls),
            "/".join(_short_verdict(r, label) for label in r.calls),
            r.recommends.split("/")[1], f"{r.wall_s:.1f}",
            "yes" if r.agrees else "NO: " + ", ".join(r.differences),
        ])  # fmt: skip
    return out


def _short_verdict(row: EngineRow, label: str) -> str:
    against = row.against.get(label)
    return SHORT[row.outcomes[label]] + (f" vs {against.split('/')[1]}" if against else "")


ENGINE_COLUMNS = [
    "seed", "reference", "run", "calls", "$", "$ vs full", "samples acc90/88/75/60",
    "verdicts acc90/88/75/60", "recommends", "wall s", "= simulation",
]  # fmt: skip


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m perf.decisions")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--sizes", default="500,2000,5000", help="items of the 4-variant runs")
    parser.add_argument("--edge-n", type=int, default=500, help="items of the edge scenarios")
    parser.add_argument("--peek-reps", type=int, default=200)
    parser.add_argument("--check-reps", type=int, default=10)
    parser.add_argument("--engine-seeds", type=int, default=5)
    parser.add_argument("--engine-rows", type=int, default=500)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.sizes, args.edge_n, args.peek_reps = 30, "300", 300, 30
        args.check_reps, args.engine_seeds, args.engine_rows = 3, 1, 200
    args.sizes = [int(size) for size in args.sizes.split(",")]
    return args


def part_a(args: argparse.Namespace) -> tuple[list[ScenarioResult], FlipCache]:
    cache = FlipCache()
    results = []
    for sc in scenarios(args):
        results.append(run_scenario(sc, cache, args.check_reps))
        print(f"  {sc.name}: {results[-1].seconds:.1f} s", flush=True)
    return results, cache


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    results, cache = part_a(args)
    seconds_a = time.perf_counter() - start
    print_table(
        f"Part A: repetitions with a wrong claim (margin {MARGIN}, alpha {ALPHA})",
        ERROR_COLUMNS, error_rows(results), markdown=args.markdown,
    )  # fmt: skip
    print_table(
        "Part A: what the adaptive run spends and recommends, against the full run (baseline)",
        SPEND_COLUMNS, spend_rows(results), markdown=args.markdown,
    )  # fmt: skip
    start = time.perf_counter()
    engine = engine_rows(args.engine_seeds, args.engine_rows)
    seconds_b = time.perf_counter() - start
    print_table(
        f"Part B: the real engine, adaptive vs full ({args.engine_rows:,} items, 4 variants)",
        ENGINE_COLUMNS, engine_table_rows(engine), markdown=args.markdown,
    )  # fmt: skip
    mismatches = [m for r in results for m in r.mismatches]
    checked = sum(r.checked for r in results)
    print(
        f"\nChecks: adaptive replay == the product's rounds and report (prefix_decisions, "
        f"still_open, decide) on {checked} repetitions, batched sign flips == the product's on "
        f"{2 * len(results)} ({cache.hits:,} flips prefetched, {cache.misses:,} computed); "
        f"engine == simulation in {sum(r.agrees for r in engine)} of {len(engine)} runs. "
        f"Final reference a variant stopped early: "
        f"{sum(r.reference_stopped for r in results)} repetitions."
    )
    for mismatch in mismatches:
        print(f"MISMATCH {mismatch}")
    print(f"Part A took {seconds_a:.0f} s, Part B {seconds_b:.0f} s.")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(as_json(results, engine, seconds_a, seconds_b), indent=2))
    return 0 if not mismatches and all(r.agrees for r in engine) else 1


def as_json(
    results: Sequence[ScenarioResult], engine: Sequence[EngineRow], a_s: float, b_s: float
) -> dict[str, Any]:
    scenarios_out = [
        {
            "scenario": r.scenario.name,
            "wrong": {rule: {"reps": t.reps, **t.wrong} for rule, t in r.tallies.items()},
            "calls_ratio": float(np.mean(r.calls_ratio)),
            "dollars_ratio": float(np.mean(r.dollars_ratio)),
            "same_recommendation": r.same_recommendation,
            "recommends": {k: dict(v) for k, v in r.recommends.items()},
            "stopped_against_other": r.stopped_against_other,
            "reference_stopped": r.reference_stopped,
            "checked": r.checked,
            "mismatches": r.mismatches,
            "seconds": r.seconds,
        }
        for r in results
    ]
    engine_out = [{**r.__dict__} for r in engine]
    return {"scenarios": scenarios_out, "engine": engine_out, "seconds": [a_s, b_s]}


if __name__ == "__main__":
    raise SystemExit(main())
