"""Session neighbourhood and two-step transition scores, for a batch of states at once.

* V-SKNN (Ludewig & Jannach 2018; the ``v-sknn`` baseline of :mod:`models.baselines.knn`) over
  the state's recent tracks (the last :data:`features.session.RECENT_TRACKS` started, oldest
  first): the track at position ``p`` of ``L`` weighs ``p / L`` (a repeated track keeps its
  latest position); of the training sessions sharing a track with it, the
  :data:`KNN_SAMPLE` latest (in training order); similarity = the weighted overlap divided by
  the number of distinct recent tracks; the :data:`KNN_NEIGHBOURS` most similar (ties: the
  later session); a track's score = the sum of the similarities of the neighbours holding it.
* Two-step transitions: ``P(current -> x -> t)`` with ``P`` the training transitions normalised
  per source (the tracks that usually come two steps later).

Both are sparse products over the training index, computed per row in a fixed order, so a
state's scores do not depend on the other states of its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]

KNN_NEIGHBOURS: Final = 100
KNN_SAMPLE: Final = 500
#: Batches of up to this many states gather rows; larger ones multiply sparse matrices (the
#: measured crossovers, CPU per call: V-SKNN 0.14 vs 0.39 ms for one state, 0.84 vs 0.81 ms
#: for eight; two-step 0.02 vs 0.12 ms for one, 0.17 vs 0.15 ms for eight).
GATHER_UP_TO: Final = 6


@dataclass(frozen=True, eq=False)
class SessionIndex:
    """The training sessions' distinct tracks as binary sparse matrices, both ways."""

    by_session: sp.csr_matrix  # [S, T]
    by_track: sp.csr_matrix  # [T, S]

    @classmethod
    def of(cls, indptr: I64, indices: I32, n_tracks: int) -> SessionIndex:
        n_sessions = len(indptr) - 1
        data = np.ones(len(indices), np.float64)
        by_session = sp.csr_matrix((data, indices, indptr), shape=(n_sessions, n_tracks))
        by_track = by_session.T.tocsr()
        by_track.sort_indices()
        return cls(by_session, by_track)


def session_tracks(seqs: Sequence[I32]) -> tuple[I64, I32]:
    """CSR (indptr, sorted distinct track indices) of each sequence."""
    distinct = [np.unique(s) for s in seqs]
    indptr = np.zeros(len(distinct) + 1, np.int64)
    np.cumsum([len(d) for d in distinct], out=indptr[1:])
    indices = np.concatenate(distinct).astype(np.int32) if distinct else np.empty(0, np.int32)
    return indptr, indices


def _rows_of(matrix: sp.csr_matrix, rows: I64) -> tuple[I64, NDArray[np.float64], I64]:
    """The stored (column, value) entries of ``rows`` of ``matrix``, row after row in the given
    order (each row's columns ascending), and each row's entry count."""
    lo = matrix.indptr[rows]
    counts = matrix.indptr[rows + 1] - lo
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    at = starts + np.arange(int(counts.sum()))
    return matrix.indices[at].astype(np.int64), matrix.data[at], counts


def vsknn_scores(recents: Sequence[I32], index: SessionIndex, width: int) -> F32:
    """[B, width] V-SKNN scores of every track (columns past the catalogue stay 0).

    Each state's overlap with the training sessions, then its neighbours' track scores, are
    sums over the index's rows in ascending order (tracks, then sessions). A small batch
    gathers those rows per state (building sparse matrices costs more than the products
    there); a larger one multiplies sparse matrices, whose sums run in the same order, so the
    scores are the same bit for bit either way."""
    if len(recents) <= GATHER_UP_TO:
        return _vsknn_gathered(recents, index, width)
    return _vsknn_sparse(recents, index, width)


def _recent_weights(recent: I32) -> tuple[I64, NDArray[np.float64]]:
    """The state's distinct known recent tracks (ascending) and their weights: the latest
    position p of L, p / L, over the number of distinct recent tracks."""
    n = len(recent)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    tracks, first = np.unique(recent[::-1], return_index=True)
    weights = (n - first) / n / len(tracks)  # latest position p = n - first, over n
    known = tracks >= 0
    return tracks[known].astype(np.int64), weights[known]


def _vsknn_gathered(recents: Sequence[I32], index: SessionIndex, width: int) -> F32:
    """:func:`vsknn_scores` state by state, by gathering the index's rows."""
    n_tracks, n_sessions = index.by_track.shape
    out = np.zeros((len(recents), width), np.float32)
    for b, recent in enumerate(recents):
        tracks, weights = _recent_weights(recent)
        if len(tracks) == 0:
            continue
        sessions, ones, counts = _rows_of(index.by_track, tracks)
        overlap = np.bincount(
            sessions, weights=np.repeat(weights, counts) * ones, minlength=n_sessions
        )
        shared = np.flatnonzero(overlap)[-KNN_SAMPLE:]  # ascending: the latest last
        top = np.sort(shared[np.lexsort((-shared, -overlap[shared]))[:KNN_NEIGHBOURS]])
        held, ones, counts = _rows_of(index.by_session, top)
        out[b, :n_tracks] = np.bincount(
            held, weights=np.repeat(overlap[top], counts) * ones, minlength=n_tracks
        )
    return out


def _vsknn_sparse(recents: Sequence[I32], index: SessionIndex, width: int) -> F32:
    """:func:`vsknn_scores` as two sparse products for the whole batch."""
    n_states = len(recents)
    n_tracks = index.by_track.shape[0]
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for b, recent in enumerate(recents):
        tracks, weights = _recent_weights(recent)
        rows += [b] * len(tracks)
        cols += tracks.tolist()
        values += weights.tolist()
    out = np.zeros((n_states, width), np.float32)
    if not rows:
        return out
    query = sp.csr_matrix((values, (rows, cols)), shape=(n_states, n_tracks))
    overlap = (query @ index.by_track).tocsr()
    overlap.sort_indices()
    nb_rows: list[I64] = []
    nb_cols: list[I64] = []
    nb_vals: list[NDArray[np.float64]] = []
    for b in range(n_states):
        lo, hi = overlap.indptr[b], overlap.indptr[b + 1]
        sessions = overlap.indices[lo:hi][-KNN_SAMPLE:]  # ascending: the latest last
        sims = overlap.data[lo:hi][-KNN_SAMPLE:]
        top = np.lexsort((-sessions, -sims))[:KNN_NEIGHBOURS]
        nb_rows.append(np.full(len(top), b, np.int64))
        nb_cols.append(sessions[top].astype(np.int64))
        nb_vals.append(sims[top])
    neighbours = sp.csr_matrix(
        (np.concatenate(nb_vals), (np.concatenate(nb_rows), np.concatenate(nb_cols))),
        shape=(n_states, index.by_session.shape[0]),
    )
    scores = (neighbours @ index.by_session).toarray()
    out[:, :n_tracks] = scores
    return out


def transition_probabilities(
    indptr: I64, indices: I32, counts: F32, out_count: F32
) -> sp.csr_matrix:
    """[T, T] ``count(a -> b) / transitions out of a``."""
    n = len(indptr) - 1
    rows = np.repeat(np.arange(n), np.diff(indptr))
    data = counts.astype(np.float64) / np.maximum(out_count.astype(np.float64)[rows], 1.0)
    return sp.csr_matrix((data, indices, indptr), shape=(n, n))


def two_step_scores(currents: I64, probabilities: sp.csr_matrix, width: int) -> F32:
    """[B, width] ``P(current -> x -> t)`` of every track t (0 rows for an unknown current)."""
    out = np.zeros((len(currents), width), np.float32)
    known = np.flatnonzero(currents >= 0)
    if len(known) == 0:
        return out
    n = probabilities.shape[0]
    if len(currents) > GATHER_UP_TO:
        out[known, :n] = (probabilities[currents[known]] @ probabilities).toarray()
        return out
    for b in known:  # gathered rows, summed in the sparse product's order (the same values)
        lo, hi = probabilities.indptr[currents[b]], probabilities.indptr[currents[b] + 1]
        steps, p_step = probabilities.indices[lo:hi].astype(np.int64), probabilities.data[lo:hi]
        tracks, p_next, counts = _rows_of(probabilities, steps)
        out[b, :n] = np.bincount(tracks, weights=np.repeat(p_step, counts) * p_next, minlength=n)
    return out
