"""A session state resolved against the track artifacts, once per ranking request.

Candidate generation (:mod:`features.candidates`) and feature rows (:mod:`features.rows`) both
start from a :class:`StateContext`: the state's tracks as artifact indices, the session-level
feature values, the taste centroids in embedding space, and per track the recency-weighted
co-listen score, the session kNN (V-SKNN) score, the two-step transition score and, when the
model has one, the sequence model's score (computed once per batch by the caller and handed in
as a matrix, one row per state). :func:`state_contexts` resolves a batch of states together
(one track-id lookup, one centroid sum, one co-listen scatter); a state's context does not
depend on its batch, and :func:`state_context` is the batch of one. Contexts of one batch share
arrays (their fields are views), so they are read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Final, TypeVar

import numpy as np
from numpy.typing import NDArray

from features.artifacts import F32, I32, I64, TrackArtifacts
from features.neighbours import two_step_scores, vsknn_scores
from features.session import SessionState

S = TypeVar("S")
R = TypeVar("R")

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
    previous2: int  # the track started before ``previous``
    context2: int  # features.ngrams code of (previous, current); -1 when either is unknown
    context3: int  # ... of (previous2, previous, current)
    knn: F32  # [T + 1] V-SKNN score of each track (features.neighbours), last entry 0
    two_step: F32  # [T + 1] P(current -> x -> track), last entry 0
    sequence: F32 | None  # [T + 1] the sequence model's logits (last entry 0), None without one


def state_context(
    state: SessionState, artifacts: TrackArtifacts, sequence: F32 | None = None
) -> StateContext:
    return state_contexts([state], artifacts, sequence)[0]


#: At most this many [T + 1] score cells are built at once (states per chunk = this // (T + 1)).
MAX_BATCH_CELLS: Final = 1 << 21


def in_chunks(items: Sequence[S], chunk: int, resolve: Callable[[Sequence[S]], list[R]]) -> list[R]:
    """``resolve`` over consecutive chunks of at most ``chunk`` items, results in order."""
    if len(items) <= chunk:
        return resolve(items)
    return [r for i in range(0, len(items), chunk) for r in resolve(items[i : i + chunk])]


def state_contexts(
    states: Sequence[SessionState], artifacts: TrackArtifacts, sequence: F32 | None = None
) -> list[StateContext]:
    """The context of each state, resolved together: one track-id lookup, one centroid sum and
    one co-listen scatter per chunk of states. A state's context does not depend on the others.
    ``sequence``: the sequence model's scores ``[len(states), n_tracks]``, or None."""
    chunk = max(1, MAX_BATCH_CELLS // (artifacts.n_tracks + 1))
    out: list[StateContext] = []
    for i in range(0, len(states), chunk):
        part = None if sequence is None else sequence[i : i + chunk]
        out += _contexts(states[i : i + chunk], artifacts, part)
    return out


def _contexts(
    states: Sequence[SessionState], artifacts: TrackArtifacts, sequence: F32 | None
) -> list[StateContext]:
    n_states = len(states)
    if n_states == 0:
        return []
    index = artifacts.index
    # One lookup for every state's three track lists, each list led by "" (index -1: the zero
    # embedding row) so that every segment of the reduceat below is non-empty, then the played
    # tracks.
    ids: list[str] = []
    starts: list[int] = []  # per state: listened, skipped and recent segments
    for state in states:
        at = len(ids)
        listened, skipped = state.listened_tracks, state.skipped_tracks
        starts += (at, at + len(listened) + 1, at + len(listened) + len(skipped) + 2)
        ids += ("", *listened, "", *skipped, "", *state.recent_tracks)
    n_lists = len(ids)
    played_ends = []
    for state in states:
        ids += state.played
        played_ends.append(len(ids) - n_lists)
    looked_up = np.fromiter(map(index.get, ids, repeat(-1)), dtype=np.int32, count=len(ids))
    lists = looked_up[:n_lists]
    table = artifacts.embedding_table64
    sums = np.add.reduceat(table[lists], starts, axis=0)
    norms = np.sqrt((sums * sums).sum(axis=1))
    centroids = sums / np.where(norms > 0, norms, 1.0)[:, None]
    currents = [index.get(s.current_track, -1) if s.current_track else -1 for s in states]
    dim = table.shape[1]
    directions = np.empty((n_states, dim, 4), dtype=np.float64)
    directions[:, :, 0] = table[currents]  # the zero row for -1
    directions[:, :, 1:] = centroids.reshape(n_states, 3, dim).transpose(0, 2, 1)

    recents: list[I32] = []
    colisten_sources: list[int] = []  # known recent tracks, newest first per state
    colisten_owner: list[int] = []
    colisten_age: list[int] = []
    ends = [*starts[3::3], n_lists]
    for b in range(n_states):
        recent = lists[starts[3 * b + 2] + 1 : ends[b]]
        recents.append(recent)
        for age, source in enumerate(recent[::-1][:COLISTEN_DEPTH].tolist()):
            if source >= 0:
                colisten_sources.append(source)
                colisten_owner.append(b)
                colisten_age.append(age)
    colisten = _colisten_scores(
        artifacts, n_states, np.array(colisten_sources, np.int64), colisten_owner, colisten_age
    )

    # Each state's known played tracks: a slice of played[known].
    played = looked_up[n_lists:]
    known = np.flatnonzero(played >= 0)
    played_known = played[known]
    played_bounds = np.searchsorted(known, [0, *played_ends]).tolist()
    width = artifacts.n_tracks + 1
    knn = vsknn_scores(recents, artifacts.sessions_index, width)
    two_step = two_step_scores(np.array(currents, np.int64), artifacts.trans_probability, width)
    lasts = np.full((n_states, 3), -1, np.int64)
    for b, recent in enumerate(recents):
        tail = recent[-3:]
        lasts[b, 3 - len(tail) :] = tail
    codes2 = artifacts.ngram2.context_codes(lasts[:, 1:]).tolist()
    codes3 = artifacts.ngram3.context_codes(lasts).tolist()
    session = _session_features(states, currents, artifacts, (codes2, codes3))
    padded = None
    if sequence is not None:
        padded = np.zeros((n_states, width), np.float32)
        padded[:, : artifacts.n_tracks] = sequence
    out = []
    for b, state in enumerate(states):
        recent = recents[b]
        out.append(
            StateContext(
                state=state,
                current=currents[b],
                previous=int(recent[-2]) if len(recent) >= 2 else -1,
                last_listened=index.get(state.last_listened, -1) if state.last_listened else -1,
                last_skipped=index.get(state.last_skipped, -1) if state.last_skipped else -1,
                played=played_known[played_bounds[b] : played_bounds[b + 1]],
                session_features=session[b],
                directions=directions[b],
                colisten=colisten[b],
                previous2=int(lasts[b, 0]),
                context2=codes2[b],
                context3=codes3[b],
                knn=knn[b],
                two_step=two_step[b],
                sequence=None if padded is None else padded[b],
            )
        )
    return out


def _session_features(
    states: Sequence[SessionState],
    currents: list[int],
    artifacts: TrackArtifacts,
    codes: tuple[list[int], list[int]],
) -> F32:
    totals2 = artifacts.ngram2.totals(np.array(codes[0], np.int64))
    totals3 = artifacts.ngram3.totals(np.array(codes[1], np.int64))
    values = []
    for b, (state, current) in enumerate(zip(states, currents, strict=True)):
        known = current >= 0
        values.append(
            (
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
                np.log1p(totals2[b]),
                np.log1p(totals3[b]),
            )
        )
    rows: F32 = np.array(values, dtype=np.float32)
    return rows


def _colisten_scores(
    artifacts: TrackArtifacts, n_states: int, sources: I64, owner: list[int], age: list[int]
) -> F32:
    """[n_states, T + 1]: sum over recent tracks r (newest k=0) of DECAY**k * count(r -> t)."""
    n = artifacts.n_tracks + 1
    if len(sources) == 0:
        return np.zeros((n_states, n), dtype=np.float32)
    which, entry = artifacts.transition_rows(sources)
    weight = (COLISTEN_DECAY ** np.array(age, np.float64))[which]
    cells = np.array(owner, np.int64)[which] * n + artifacts.trans_indices[entry]
    # Integer counts times powers of two: the float64 sums are exact, whatever their order.
    weights = artifacts.trans_count[entry] * weight
    scores: F32 = (
        np.bincount(cells, weights=weights, minlength=n_states * n)
        .astype(np.float32)
        .reshape(n_states, n)
    )
    return scores
