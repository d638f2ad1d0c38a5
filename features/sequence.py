"""Inputs of the next-track sequence model: the session's recent plays as index arrays.

The one feature path of :mod:`models.sequence`: the stream and the evaluation call
:func:`sequence_inputs` on :class:`~features.session.SessionState` objects (the query point is
the state right after a ``track_start``: the current play is the last one, its outcome unknown);
training calls :func:`session_sequences`, which gives the same arrays for every position of a
session in one row (a test proves the two equal on real sessions).

Encoding (shared by training and serving):

* track code = artifact track index + 1; 0 = padding or a track the artifacts do not know;
* outcome code (:data:`OUTCOME_CODES`): 0 padding, 1 skipped early, 2 skipped late,
  3 listened through, 4 unknown (the current play, or a play whose end never arrived);
* rows are the last ``length`` plays, oldest first, right-padded with zeros; ``lengths`` counts
  the real plays of each row.

numpy only: the worker imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np

from features.artifacts import I64, SessionLike, TrackArtifacts
from features.session import RECENT_TRACKS, SessionState

#: Plays the sequence model sees (the state remembers :data:`RECENT_TRACKS` of them).
SEQUENCE_LENGTH: Final = 20
PADDING: Final = 0
#: Outcome codes; "" (a play not ended yet) is :data:`UNKNOWN_OUTCOME`.
OUTCOME_CODES: Final[dict[str, int]] = {"skip_early": 1, "skip_late": 2, "listened": 3}
UNKNOWN_OUTCOME: Final = 4
#: Number of outcome codes (the outcome embedding's rows).
N_OUTCOME_CODES: Final = 5

if SEQUENCE_LENGTH > RECENT_TRACKS:  # pragma: no cover - a configuration error
    raise ValueError("the session state remembers fewer plays than the sequence model reads")


def sequence_inputs(
    states: Sequence[SessionState], artifacts: TrackArtifacts, length: int = SEQUENCE_LENGTH
) -> tuple[I64, I64, I64]:
    """``tracks [B, L]``, ``outcomes [B, L]``, ``lengths [B]`` of the states' last ``L`` plays."""
    n = len(states)
    tracks = np.zeros((n, length), np.int64)
    outcomes = np.zeros((n, length), np.int64)
    lengths = np.zeros(n, np.int64)
    get = artifacts.index.get
    code = OUTCOME_CODES.get
    for b, state in enumerate(states):
        recent = state.recent_tracks[-length:]
        ended = state.recent_outcomes[-length:]
        k = len(recent)
        lengths[b] = k
        tracks[b, :k] = [get(t, -1) + 1 for t in recent]
        outcomes[b, :k] = [code(o, UNKNOWN_OUTCOME) for o in ended]
    return tracks, outcomes, lengths


class SequenceRows(NamedTuple):
    """Training rows (see :func:`session_sequences`), ``[N, L]`` unless noted."""

    tracks: I64
    outcomes: I64
    lengths: I64  # [N] plays in the row
    targets: I64  # artifact index of the next play, -1 none or unknown
    target_outcomes: I64  # outcome code of that next play, 0 none


def session_sequences(
    sessions: Sequence[SessionLike], artifacts: TrackArtifacts, length: int = SEQUENCE_LENGTH
) -> SequenceRows:
    """Training rows: every play of every session as a target, in one pass per row.

    Each session is cut into windows of up to ``length + 1`` plays that overlap by one play
    (so every transition is a target exactly once). A window gives ``tracks [L]``, ``outcomes
    [L]`` (the real outcome of every play), its ``length`` (plays in the row, at most L) and
    ``targets [L]``: the artifact index of the play after each one, -1 where there is none
    (the last play, padding) or it is unknown to the artifacts; ``target_outcomes`` are the
    outcome codes of those next plays.

    Row ``r`` at step ``t`` holds what :func:`sequence_inputs` gives for the state right after
    the ``track_start`` of play ``t`` of the window, except that this play's outcome is already
    filled in: the model reads the outcome of play ``t`` only from step ``t + 1`` on.
    """
    index = artifacts.index
    rows_tracks: list[list[int]] = []
    rows_outcomes: list[list[int]] = []
    for session in sessions:
        plays = session.plays
        codes = [index.get(p.track_id, -1) + 1 for p in plays]
        ended = [OUTCOME_CODES.get(p.outcome, UNKNOWN_OUTCOME) for p in plays]
        start = 0
        while start < len(plays) - 1 or (start == 0 and plays):
            rows_tracks.append(codes[start : start + length + 1])
            rows_outcomes.append(ended[start : start + length + 1])
            start += length
    n = len(rows_tracks)
    full_tracks = np.zeros((n, length + 1), np.int64)
    full_outcomes = np.zeros((n, length + 1), np.int64)
    sizes = np.zeros(n, np.int64)
    for r, (t, o) in enumerate(zip(rows_tracks, rows_outcomes, strict=True)):
        full_tracks[r, : len(t)] = t
        full_outcomes[r, : len(o)] = o
        sizes[r] = len(t)
    targets = full_tracks[:, 1:] - 1
    target_outcomes = full_outcomes[:, 1:].copy()
    none = np.arange(length)[None, :] >= (sizes - 1)[:, None]
    targets[none] = -1
    target_outcomes[none] = 0
    return SequenceRows(
        full_tracks[:, :length],
        full_outcomes[:, :length],
        np.minimum(sizes, length),
        targets,
        target_outcomes,
    )
