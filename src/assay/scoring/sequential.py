"""Confidence sequences: intervals for a mean that stay valid however often they are looked at.

A fixed-n interval checked after every round of an adaptive run would be wrong more often than
its level says (each look is another chance to cross). A confidence sequence covers the mean at
*every* n at once with probability ``1 - alpha``, so a run may stop the first time it settles.

- Scores in [0, 1] (their paired differences in [-1, 1]): the predictable plug-in empirical-
  Bernstein sequence of Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
  betting", JRSS-B 2023 (Theorem 2), valid for any n with no distributional assumption.
- Any other scores: the asymptotic confidence sequence (Robbins' normal mixture) of Waudby-Smith,
  Arnold, Wu, Zhang & Ramdas, "Time-uniform central limit theory and asymptotic confidence
  sequences", Annals of Statistics 2024 (Theorem 2.2), tuned to be tightest near ``horizon``.

Both take the running intersection (a sequence that held at n also holds later). The order of
the values is the order they were observed in; adaptive runs draw items in a seeded random
order, so the values are exchangeable and any prefix is a fair sample.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

_BET_CAP = 0.5  # the largest bet: the paper's default c = 1/2


def confidence_sequence(
    values: Floats, alpha: float, bounded: bool, horizon: int
) -> tuple[float, float]:
    """The interval for the mean of ``values`` after the last one; (-inf, inf) when empty.

    ``bounded`` means every value lies in [-1, 1] (a difference of two [0, 1] scores)."""
    if len(values) == 0:
        return -math.inf, math.inf
    if bounded:
        lows, highs = _bounded_sequence(values, alpha)
    else:
        lows, highs = _asymptotic_sequence(values, alpha, horizon)
    return float(np.max(lows)), float(np.min(highs))


def _bounded_sequence(diffs: Floats, alpha: float) -> tuple[Floats, Floats]:
    """Empirical-Bernstein sequence on x = (d + 1) / 2 in [0, 1], mapped back to d."""
    x = (np.clip(diffs, -1.0, 1.0) + 1.0) / 2.0
    t = np.arange(1, len(x) + 1, dtype=np.float64)
    mean_t = (0.5 + np.cumsum(x)) / (t + 1.0)  # mu-hat after t values
    var_t = (0.25 + np.cumsum((x - mean_t) ** 2)) / (t + 1.0)
    mean_prev = np.concatenate(([0.5], mean_t[:-1]))  # predictable: known before value t
    var_prev = np.concatenate(([0.25], var_t[:-1]))
    log_term = math.log(2.0 / alpha)
    bets = np.minimum(np.sqrt(2.0 * log_term / (var_prev * t * np.log1p(t))), _BET_CAP)
    psi = (-np.log1p(-bets) - bets) / 4.0
    spread = 4.0 * (x - mean_prev) ** 2
    weight = np.cumsum(bets)
    centre = np.cumsum(bets * x) / weight
    half = (log_term + np.cumsum(spread * psi)) / weight
    lows = np.maximum(centre - half, 0.0) * 2.0 - 1.0
    highs = np.minimum(centre + half, 1.0) * 2.0 - 1.0
    return lows, highs


def _asymptotic_sequence(values: Floats, alpha: float, horizon: int) -> tuple[Floats, Floats]:
    """Robbins' normal-mixture boundary with the running variance (asymptotically valid)."""
    t = np.arange(1, len(values) + 1, dtype=np.float64)
    mean = np.cumsum(values) / t
    var = np.maximum(np.cumsum(values**2) / t - mean**2, 0.0) * t / np.maximum(t - 1.0, 1.0)
    rho2 = (-2.0 * math.log(alpha) + math.log(-2.0 * math.log(alpha) + 1.0)) / max(horizon, 1)
    scaled = t * var * rho2 + 1.0
    half = np.sqrt(2.0 * scaled / (t**2 * rho2) * np.log(np.sqrt(scaled) / alpha))
    half[: _MIN_ASYMPTOTIC_N - 1] = math.inf  # no variance estimate worth the name yet
    return mean - half, mean + half


_MIN_ASYMPTOTIC_N = 10
