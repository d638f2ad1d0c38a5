"""The skip task's ceiling tool: the metric-optimal decision really is the best expected AA, it
differs from the per-track majority when outcomes go together, and the autoregressive history
columns see only the outcomes before each track."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from devtools import skip_ceiling
from devtools.skip_ceiling import (
    HISTORY_NAMES,
    expected_aa,
    history_columns,
    metric_optimal,
    sample_outcomes,
    with_history,
)
from features.session import Outcome
from models.labelled_sessions import LabelledPlay, Session
from models.skip.accuracy import average_accuracy
from models.skip.task_features import TASK_FEATURE_NAMES, fit_task_stats, task_matrix


def brute_force_mean_aa(predicted: np.ndarray, samples: np.ndarray) -> float:
    return float(np.mean([average_accuracy(predicted, s) for s in samples]))


@pytest.mark.parametrize("seed", range(5))
def test_the_metric_optimal_decision_has_the_best_expected_aa(seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = rng.random((9, 5)) < rng.random(5)
    chosen = metric_optimal(samples)
    best = max(
        brute_force_mean_aa(np.array(v, bool), samples)
        for v in itertools.product((False, True), repeat=5)
    )
    assert brute_force_mean_aa(chosen, samples) == pytest.approx(best)
    assert expected_aa(chosen[None], samples)[0] == pytest.approx(best)


def test_outcomes_that_go_together_beat_the_per_track_majority() -> None:
    samples = np.array(
        [[0, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 1], [0, 0, 0], [0, 0, 0]], bool
    )
    majority = samples.mean(axis=0) >= 0.5
    assert majority.tolist() == [False, False, True]
    chosen = metric_optimal(samples)
    assert chosen.tolist() == [False, False, False]
    assert brute_force_mean_aa(chosen, samples) > brute_force_mean_aa(majority, samples)


def test_long_sessions_are_searched_by_coordinate_ascent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past EXHAUSTIVE_UP_TO tracks: a local optimum (no single flip is better), and on a case
    with a better answer than the majority vote, it finds that answer."""
    monkeypatch.setattr(skip_ceiling, "EXHAUSTIVE_UP_TO", 0)
    rng = np.random.default_rng(3)
    samples = rng.random((40, 14)) < rng.random(14)
    chosen = metric_optimal(samples)
    assert len(chosen) == 14
    best = brute_force_mean_aa(chosen, samples)
    for i in range(14):
        flipped = chosen.copy()
        flipped[i] = not flipped[i]
        assert brute_force_mean_aa(flipped, samples) <= best + 1e-12
    together = np.array(
        [[0, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 1], [0, 0, 0], [0, 0, 0]], bool
    )
    assert metric_optimal(together).tolist() == [False, False, False]


class _PreviousOutcome:
    """A stand-in booster: the probability of an early skip is the previous play's outcome."""

    def predict(self, features: np.ndarray, num_threads: int) -> np.ndarray:
        return features[:, len(TASK_FEATURE_NAMES) + HISTORY_NAMES.index("previous_early")]


def test_sampled_outcomes_follow_each_sessions_own_earlier_draws() -> None:
    stats = fit_task_stats([_session("ccccee")], {})
    # two sessions: the last known play skipped early in the first, listened in the second
    rows, _, numbers = task_matrix([_session("ccle" + "ecce"), _session("eecc" + "eeeee")], stats)
    drawn = sample_outcomes(_PreviousOutcome(), rows, 3, seed=1)  # type: ignore[arg-type]
    assert drawn.shape == (3, len(rows))
    # with p = the previous outcome, every draw copies the last known outcome down the half
    assert drawn[:, numbers == 0].all()
    assert not drawn[:, numbers == 1].any()


def _session(outcomes: str) -> Session:
    names: dict[str, Outcome] = {"e": "skip_early", "l": "skip_late", "c": "listened"}
    return Session("s", "u", tuple(LabelledPlay(f"t{i}", names[o]) for i, o in enumerate(outcomes)))


def test_history_columns_see_only_the_earlier_outcomes_of_the_second_half() -> None:
    stats = fit_task_stats([_session("ccccee")], {})
    # first half "ccle" (the last known play skipped early), second half "ecce"
    rows, labels, _ = task_matrix([_session("ccle" + "ecce")], stats)
    assert labels.tolist() == [True, False, False, True]
    outcomes = labels.astype(np.float64)
    history = with_history(rows, outcomes)[:, len(TASK_FEATURE_NAMES) :]
    col = {name: history[:, i].tolist() for i, name in enumerate(HISTORY_NAMES)}
    assert col["previous_early"] == [1, 1, 0, 0]
    assert col["second_previous_early"] == [0, 1, 1, 0]  # the late skip, then the last known
    assert np.isnan(col["second_half_early_share"][0])
    assert col["second_half_early_share"][1:] == [1, 0.5, pytest.approx(1 / 3)]
    assert col["second_half_run"] == [0, 1, 1, 2]
    assert col["second_half_count"] == [0, 1, 2, 3]
    # an outcome changes only the columns of the rows after it
    flipped = outcomes.copy()
    flipped[1] = 0.0 if flipped[1] else 1.0
    again = with_history(rows, flipped)[:, len(TASK_FEATURE_NAMES) :]
    np.testing.assert_array_equal(again[:2], history[:2])
    assert not np.array_equal(again[2], history[2])
    at = np.flatnonzero(rows[:, TASK_FEATURE_NAMES.index("offset")] == 2)
    np.testing.assert_array_equal(history_columns(rows, outcomes, at), history[at])
