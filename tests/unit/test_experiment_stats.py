"""The readout's statistics against scipy.stats reference values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models.experiment_stats import (
    clustered_rate,
    clustered_z_test,
    quantile,
    relative_lift,
    srm_test,
    two_proportion_z_test,
    wilson_interval,
)


@pytest.mark.parametrize(("k", "n"), [(0, 20), (3, 20), (50, 100), (981, 1000), (7, 7)])
def test_wilson_interval_is_scipys(k: int, n: int) -> None:
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    got = wilson_interval(k, n)
    assert got.low == pytest.approx(ref.low, abs=1e-12)
    assert got.high == pytest.approx(ref.high, abs=1e-12)


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"), [(120, 1000, 150, 1000), (30, 400, 25, 380), (5, 50, 5, 50)]
)
def test_two_proportion_z_test_is_the_uncorrected_chi_square_of_the_2x2_table(
    k1: int, n1: int, k2: int, n2: int
) -> None:
    chi2, p, _, _ = stats.chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False)
    got = two_proportion_z_test(k1, n1, k2, n2)
    assert got.z**2 == pytest.approx(chi2, rel=1e-10)
    assert got.p_value == pytest.approx(p, rel=1e-10)
    assert (got.z > 0) == (k2 / n2 > k1 / n1)


def test_clustered_test_with_one_exposure_per_listener_is_welchs_t_statistic() -> None:
    rng = np.random.default_rng(3)
    a = (rng.random(400) < 0.30).astype(float)
    b = (rng.random(500) < 0.36).astype(float)
    ca, cb = clustered_rate(a, np.ones_like(a)), clustered_rate(b, np.ones_like(b))
    welch = stats.ttest_ind(b, a, equal_var=False)
    got = clustered_z_test(ca, cb)
    assert got.z == pytest.approx(welch.statistic, rel=1e-10)
    # the normal p-value of the same statistic (Welch's t has ~880 degrees of freedom here)
    assert got.p_value == pytest.approx(2 * stats.norm.sf(abs(welch.statistic)), rel=1e-10)
    assert got.p_value == pytest.approx(welch.pvalue, rel=0.05)


def test_clustered_variance_grows_when_a_listeners_exposures_are_alike() -> None:
    # 100 listeners with 10 exposures each, all hits or all misses: as uncertain as 100 coins
    y = np.array([10.0] * 30 + [0.0] * 70)
    n = np.full(100, 10.0)
    rate = clustered_rate(y, n)
    assert rate.rate == pytest.approx(0.3)
    coins = clustered_rate((y > 0).astype(float), np.ones(100))
    assert rate.variance == pytest.approx(coins.variance, rel=1e-12)
    assert rate.variance > 0.3 * 0.7 / 1000 * 5  # far above the exposure-level binomial one


def test_relative_lift_and_its_interval() -> None:
    c = clustered_rate([1.0] * 100 + [0.0] * 300, [1.0] * 400)
    t = clustered_rate([1.0] * 150 + [0.0] * 250, [1.0] * 400)
    lift = relative_lift(c, t)
    assert lift is not None
    assert lift.value == pytest.approx(0.5)
    assert lift.interval.low < 0.5 < lift.interval.high
    assert lift.interval.low > 0  # this difference is clear
    assert relative_lift(clustered_rate([0.0], [1.0]), t) is None


@pytest.mark.parametrize(
    ("observed", "weights"),
    [([5030, 4970], [50, 50]), ([912, 88], [90, 10]), ([40, 35, 25], [1, 1, 1])],
)
def test_srm_test_is_scipys_chisquare(observed: list[int], weights: list[int]) -> None:
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    ref = stats.chisquare(observed, expected)
    got = srm_test(observed, weights)
    assert got.chi2 == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_quantile_is_numpys_linear_one() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.99) == pytest.approx(np.percentile(values, 99))
    assert quantile([], 0.99) is None
