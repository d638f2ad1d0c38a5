"""A session state resolved against the track artifacts, once per ranking request.

Candidate generation (:mod:`features.candidates`) and feature rows (:mod:`features.rows`) both
start from a :class:`StateContext`: the state's tracks as artifact indices, the session-level
feature values, the taste centroids in embedding space and the recency-weighted co-listen score
of every track.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from features.artifacts import F32, I32, TrackArtifacts
from features.session import SessionState

#: Weight of the k-th most recent track's successors in the co-listen score: DECAY ** k ...
COLISTEN_DECAY: Final = 0.5
#: ... over this many most recent tracks (the current one included).
COLISTEN_DEPTH: Final = 5


@dataclass(frozen=True, slots=True, eq=False)
class StateContext:
    state: SessionState
    current: int  # track index, -1 when none or unknown
    previous: int  # the track started before the current one
    last_listened: int
    last_skipped: int
    played: I32  # known tracks already played in the session
    session_features: F32  # the session block of a feature row
    #: [D, 4] float64 columns: current track, listened-taste, skipped-taste and recent-tracks
    #: centroids (unit vectors; zeros when there is nothing to average)
    directions: NDArray[np.float64]
    colisten: F32  # [T + 1] recency-weighted "followed the recent tracks" count, last entry 0

    @property
    def taste_direction(self) -> NDArray[np.float64]:
        """Listened-taste centroid, or the recent tracks' before anything was listened through."""
        listened: NDArray[np.float64] = self.directions[:, 1]
        if listened.any():
            return listened
        recent: NDArray[np.float64] = self.directions[:, 3]
        return recent


def state_context(state: SessionState, artifacts: TrackArtifacts) -> StateContext:
    recent, listened, skipped = state.recent_tracks, state.listened_tracks, state.skipped_tracks
    # One lookup for the three track lists, each led by -1 (the zero embedding row) so that
    # every segment of the reduceat below is non-empty.
    lists = artifacts.indices_of(("", *listened, "", *skipped, "", *recent))
    starts = np.array([0, len(listened) + 1, len(listened) + len(skipped) + 2])
    sums = np.add.reduceat(artifacts.embedding_table[lists].astype(np.float64), starts, axis=0)
    norms = np.sqrt((sums * sums).sum(axis=1))
    centroids = sums / np.where(norms > 0, norms, 1.0)[:, None]
    index = artifacts.index
    current = index.get(state.current_track, -1) if state.current_track else -1
    directions = np.empty((artifacts.embedding_table.shape[1], 4), dtype=np.float64)
    directions[:, 0] = artifacts.embedding_table[current] if current >= 0 else 0.0
    directions[:, 1:] = centroids.T
    recent_idx = lists[starts[2] + 1 :]
    played = artifacts.indices_of(list(state.played))
    return StateContext(
        state=state,
        current=current,
        previous=int(recent_idx[-2]) if len(recent_idx) >= 2 else -1,
        last_listened=index.get(state.last_listened, -1) if state.last_listened else -1,
        last_skipped=index.get(state.last_skipped, -1) if state.last_skipped else -1,
        played=played[played >= 0],
        session_features=_session_features(state, current, artifacts),
        directions=directions,
        colisten=_colisten_scores(artifacts, recent_idx[-COLISTEN_DEPTH:]),
    )


def _session_features(state: SessionState, current: int, artifacts: TrackArtifacts) -> F32:
    known = current >= 0
    return np.array(
        [
            state.position,
            state.plays,
            state.skips,
            state.late_skips,
            state.listens,
            state.skip_rate,
            state.recency_skip_rate,
            state.consecutive_skips,
            float(known),
            artifacts.skip_rate[current] if known else artifacts.global_skip_rate,
            np.log1p(artifacts.out_count[current]) if known else 0.0,
        ],
        dtype=np.float32,
    )


def _colisten_scores(artifacts: TrackArtifacts, recent: I32) -> F32:
    """sum over recent tracks r (newest k=0) of DECAY**k * count(r -> t), for every track t."""
    targets, weights = [], []
    for age, source in enumerate(recent[::-1].tolist()):
        succ, count = artifacts.successors(source)
        targets.append(succ)
        weights.append(count * (COLISTEN_DECAY**age))
    n = artifacts.n_tracks + 1
    if not targets:
        return np.zeros(n, dtype=np.float32)
    scores: F32 = np.bincount(
        np.concatenate(targets), weights=np.concatenate(weights), minlength=n
    ).astype(np.float32)
    return scores
