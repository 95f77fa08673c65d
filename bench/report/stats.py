"""Statistics of a table row: mean, sample std, a t-based confidence interval, Welch's t-test.

Every statistic is over the seeds of one task × cell × variant × sweep point that finished.
Undefined values are NaN, never a made-up number: with n = 1 there is no std and no CI, and
Welch's test needs at least two values on each side.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
NAN = math.nan


@dataclass(frozen=True)
class Summary:
    """n, mean, sample std (ddof = 1) and the t-based CI of the mean of some values."""

    n: int
    mean: float = NAN
    std: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN

    @property
    def half_width(self) -> float:
        """Half the width of the CI: the `±` of `mean ± t·s/√n`."""
        return (self.ci_high - self.ci_low) / 2


def describe(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, std (ddof = 1) and the CI mean ± t_{(1+c)/2, n−1} · s/√n (Student's t)."""
    arr = np.asarray(values, dtype=float)
    n = int(arr.size)
    if n == 0:
        return Summary(0)
    mean = float(arr.mean())
    if n == 1:
        return Summary(1, mean)
    std = float(arr.std(ddof=1))
    sem = std / math.sqrt(n)
    if sem == 0.0:
        return Summary(n, mean, std, mean, mean)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return Summary(n, mean, std, float(low), float(high))


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """mean(a) − mean(b) and the two-sided p-value of Welch's unequal-variance t-test.

    The difference is NaN when either side is empty; p is NaN when either side has fewer
    than two values or both have zero variance.
    """
    if not len(a) or not len(b):
        return NAN, NAN
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return diff, NAN
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(np.asarray(a, float), np.asarray(b, float), equal_var=False)
    return diff, float(result.pvalue)


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN (a missing measurement); NaN if none is."""
    finite = [v for v in values if not math.isnan(v)]
    return math.fsum(finite) / len(finite) if finite else NAN


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order: sorted ascending,
    the i-th (from 0) of m is multiplied by (m − i), made non-decreasing, capped at 1.
    Rejecting where adjusted p ≤ α controls the family-wise error rate at α. Undefined (NaN)
    p-values stay NaN and do not count in m."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [NAN] * len(p_values)
    running, m = 0.0, len(order)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def ratio_pct(value: float, base: float) -> float:
    """(value / base − 1) in percent; NaN when either is missing or base is 0."""
    if math.isnan(value) or math.isnan(base) or base == 0:
        return NAN
    return (value / base - 1.0) * 100.0


def gain_pct(mean: float, base: float, direction: str) -> float:
    """Improvement of `mean` over `base` in percent of |base|; positive is better, for a
    metric to maximise (`max`) or minimise (`min`)."""
    if math.isnan(mean) or math.isnan(base) or base == 0:
        return NAN
    sign = 1.0 if direction == "max" else -1.0
    return sign * (mean - base) / abs(base) * 100.0
