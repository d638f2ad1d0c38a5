"""Accuracy of sequential skip predictions, as the WSDM Cup 2019 (Spotify Sequential Skip
Prediction Challenge) defined it.

For one session, the predictions ``p_1..p_T`` of its second half's tracks (in order) are scored
by the average accuracy

    AA = (1/T) * sum_{i=1..T} A(i) * L(i)

where ``L(i)`` is 1 when prediction ``i`` is correct and ``A(i)`` is the accuracy of the first
``i`` predictions: early positions weigh most, like an average precision over correct
predictions. The mean average accuracy (MAA) is the mean of AA over sessions; the first-track
accuracy is the share of sessions whose first prediction is correct.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

#: Candidate decision thresholds of a skip model; the validation split picks one.
THRESHOLDS: Final = tuple(round(t, 2) for t in np.arange(0.30, 0.71, 0.02))


def average_accuracy(predicted: NDArray[np.bool_], actual: NDArray[np.bool_]) -> float:
    """AA of one session's ordered predictions (``predicted[i]``: track ``i`` is skipped)."""
    if len(predicted) != len(actual):
        raise ValueError("predicted and actual differ in length")
    if len(predicted) == 0:
        raise ValueError("a session needs at least one prediction")
    correct = (np.asarray(predicted, bool) == np.asarray(actual, bool)).astype(np.float64)
    running = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    return float((running * correct).mean())


def first_track_correct(predicted: NDArray[np.bool_], actual: NDArray[np.bool_]) -> float:
    """1.0 when the session's first prediction is correct."""
    return float(bool(predicted[0]) == bool(actual[0]))


def session_accuracies(
    sessions: NDArray[np.int64], predicted: NDArray[np.bool_], actual: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per session (``sessions[i]``: the session 0..S-1 of prediction ``i``, predictions of a
    session consecutive and in play order): its AA and its first-track correctness."""
    if len(sessions) == 0:
        return np.empty(0), np.empty(0)
    bounds = np.flatnonzero(np.diff(sessions)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(sessions)]])
    aa = np.array(
        [average_accuracy(predicted[a:b], actual[a:b]) for a, b in zip(starts, ends, strict=True)]
    )
    first = (np.asarray(predicted)[starts] == np.asarray(actual)[starts]).astype(np.float64)
    return aa, first


def best_threshold(
    probabilities: NDArray[np.float64], sessions: NDArray[np.int64], actual: NDArray[np.bool_]
) -> tuple[float, float]:
    """The threshold of :data:`THRESHOLDS` with the best MAA of ``probabilities >= t`` (the
    first of equals), and that MAA; 0.5 and 0.0 when there are no predictions."""
    if len(probabilities) == 0:
        return 0.5, 0.0

    def maa(t: float) -> float:
        return float(session_accuracies(sessions, probabilities >= t, actual)[0].mean())

    best = max(THRESHOLDS, key=maa)
    return best, maa(best)
