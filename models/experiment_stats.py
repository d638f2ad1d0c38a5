"""The statistics of an A/B readout, pure (numbers in, numbers out).

* :func:`wilson_interval`: a 95% interval of a proportion (Wilson score; sound near 0 and 1).
* :func:`two_proportion_z_test`: the classic pooled z-test of two proportions; it treats every
  exposure as independent.
* :func:`clustered_rate` and :func:`clustered_z_test`: the rate of a metric as a ratio of sums
  over listeners, with a delta-method (cluster-robust) variance. Listeners, not exposures, are
  the randomisation unit: one listener's exposures are correlated (a listener who plays the
  recommendations does so again and again), so the exposure-level test is too confident; the
  readout's p-values and lift intervals use this one. With one exposure per listener it is
  Welch's t statistic on the 0/1 values.
* :func:`relative_lift`: treatment over control minus one, with a 95% interval (delta method on
  the log ratio).
* :func:`srm_test`: the sample-ratio-mismatch check, Pearson's chi-square of the listeners per
  variant against the configured weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import stats

Z95: Final = float(stats.norm.ppf(0.975))


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson_interval(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of ``successes / n`` (``(0, 1)`` when ``n`` is 0)."""
    if n == 0:
        return Interval(0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class ZTest:
    z: float
    p_value: float


def two_proportion_z_test(k1: int, n1: int, k2: int, n2: int) -> ZTest:
    """Pooled two-sided z-test of ``k1/n1`` against ``k2/n2``."""
    if n1 == 0 or n2 == 0:
        return ZTest(0.0, 1.0)
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return ZTest(0.0, 1.0)
    z = (k2 / n2 - k1 / n1) / se
    return ZTest(z, float(2 * stats.norm.sf(abs(z))))


@dataclass(frozen=True, slots=True)
class ClusteredRate:
    """``sum(y) / sum(n)`` over listeners, and the delta-method variance of that ratio."""

    rate: float
    variance: float
    clusters: int
    units: int

    @property
    def interval(self) -> Interval:
        half = Z95 * math.sqrt(self.variance)
        return Interval(max(0.0, self.rate - half), min(1.0, self.rate + half))


def clustered_rate(
    successes: Sequence[float] | np.ndarray, units: Sequence[float] | np.ndarray
) -> ClusteredRate:
    """The rate of per-listener ``successes`` over per-listener ``units`` (e.g. hits over
    exposures): Var(R) = sum((y_i - R n_i)^2) / (m (m - 1) nbar^2) for m listeners."""
    y = np.asarray(successes, dtype=np.float64)
    n = np.asarray(units, dtype=np.float64)
    m = len(y)
    total = float(n.sum())
    if m == 0 or total == 0:
        return ClusteredRate(0.0, 0.0, m, int(total))
    rate = float(y.sum()) / total
    if m < 2:
        return ClusteredRate(rate, 0.0, m, int(total))
    nbar = total / m
    resid = y - rate * n
    variance = float((resid**2).sum()) / (m * (m - 1) * nbar * nbar)
    return ClusteredRate(rate, variance, m, int(total))


def clustered_z_test(control: ClusteredRate, treatment: ClusteredRate) -> ZTest:
    """Two-sided z-test of the difference of two clustered rates."""
    se = math.sqrt(control.variance + treatment.variance)
    if se == 0:
        return ZTest(0.0, 1.0)
    z = (treatment.rate - control.rate) / se
    return ZTest(z, float(2 * stats.norm.sf(abs(z))))


@dataclass(frozen=True, slots=True)
class Lift:
    """``treatment / control - 1`` and its 95% interval."""

    value: float
    interval: Interval


def relative_lift(control: ClusteredRate, treatment: ClusteredRate) -> Lift | None:
    """None when either rate is 0 (no ratio)."""
    if control.rate <= 0 or treatment.rate <= 0:
        return None
    log_ratio = math.log(treatment.rate / control.rate)
    se = math.sqrt(control.variance / control.rate**2 + treatment.variance / treatment.rate**2)
    return Lift(
        treatment.rate / control.rate - 1,
        Interval(math.exp(log_ratio - Z95 * se) - 1, math.exp(log_ratio + Z95 * se) - 1),
    )


@dataclass(frozen=True, slots=True)
class SrmTest:
    chi2: float
    p_value: float
    expected: tuple[float, ...]


def srm_test(observed: Sequence[int], weights: Sequence[float]) -> SrmTest:
    """Chi-square goodness of fit of ``observed`` counts to shares proportional to ``weights``."""
    total = sum(observed)
    share = sum(weights)
    expected = tuple(total * w / share for w in weights)
    if total == 0 or len(observed) < 2:
        return SrmTest(0.0, 1.0, expected)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return SrmTest(chi2, float(stats.chi2.sf(chi2, len(observed) - 1)), expected)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (linear interpolation), None when there are no values."""
    if not values:
        return None
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))
