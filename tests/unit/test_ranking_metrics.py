from __future__ import annotations

import math

import numpy as np
import pytest

from models.ranking_metrics import (
    SessionBootstrap,
    graded_ndcg,
    hit_rate,
    per_query,
    reciprocal_rank,
)


def test_hit_rate_and_mrr_of_hand_built_lists() -> None:
    # Ranks of the target in four lists: first, third, tenth, not in the top 10 (0), 11th.
    ranks = np.array([1, 3, 10, 0, 11])
    assert hit_rate(ranks).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert reciprocal_rank(ranks).tolist() == pytest.approx([1.0, 1 / 3, 1 / 10, 0.0, 0.0])
    assert hit_rate(ranks, cutoff=3).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_graded_ndcg_weighs_the_outcome_of_the_next_track() -> None:
    ranks = np.array([1, 1, 1, 3, 3, 0])
    gains = np.array([2, 1, 0, 2, 1, 2])  # listened, skipped late, skipped early, ...
    expected = [1.0, 1 / 3, 0.0, 1 / math.log2(4), (1 / 3) / math.log2(4), 0.0]
    assert graded_ndcg(ranks, gains).tolist() == pytest.approx(expected)
    values = per_query(ranks, gains)
    assert set(values) == {"hr", "mrr", "ndcg"}


def test_bootstrap_pools_queries_and_resamples_whole_sessions() -> None:
    # Session 0 has three hits, session 1 one miss: the pooled mean is 3/4, not (1 + 0) / 2.
    sessions = np.array([0, 0, 0, 1])
    values = np.array([1.0, 1.0, 1.0, 0.0])
    boot = SessionBootstrap(sessions, 2, resamples=2000, seed=1)
    estimate = boot.estimate(values)
    assert estimate.value == pytest.approx(0.75)
    # Resamples draw {0,0}, {0,1}, {1,0} or {1,1}: figures 1, 3/4, 3/4 and 0, so the interval
    # runs from 0 to 1 and holds the point.
    assert estimate.low == 0.0
    assert estimate.high == 1.0
    assert boot.weights.sum(axis=1).tolist() == [2.0] * 2000


def test_bootstrap_is_seeded_holds_the_estimate_and_narrows_with_more_sessions() -> None:
    rng = np.random.default_rng(5)
    widths = []
    for n in (50, 800):
        sessions = np.repeat(np.arange(n), 4)
        values = (rng.random(len(sessions)) < 0.3).astype(np.float64)
        first = SessionBootstrap(sessions, n, resamples=500, seed=3).estimate(values)
        again = SessionBootstrap(sessions, n, resamples=500, seed=3).estimate(values)
        other = SessionBootstrap(sessions, n, resamples=500, seed=4).estimate(values)
        assert first == again
        assert first != other
        assert first.low <= first.value <= first.high
        widths.append(first.high - first.low)
    assert widths[1] < widths[0] / 2  # 16x the sessions: about a quarter of the width


def test_bootstrap_mask_and_paired_difference() -> None:
    sessions = np.array([0, 0, 1, 1, 2])
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    boot = SessionBootstrap(sessions, 3, resamples=300, seed=2)
    mask = np.array([True, True, True, True, False])
    assert boot.estimate(a, mask).value == pytest.approx(0.75)
    diff = boot.difference(a, b)
    assert diff.value == pytest.approx(0.4)
    # a is never below b at any query, so no resample can give a negative difference.
    assert diff.low >= 0.0
    empty = boot.estimate(a, np.zeros(5, bool))
    assert (empty.value, empty.low, empty.high) == (0.0, 0.0, 0.0)
