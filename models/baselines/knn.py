"""Session-based nearest neighbours: SKNN and V-SKNN (Ludewig & Jannach 2018, "Evaluation of
session-based recommendation algorithms", User Modeling and User-Adapted Interaction 28).

Both compare the WHOLE current session ``s`` (the prefix) with the training sessions, each a
binary vector over the catalogue (its distinct tracks):

1. Neighbourhood sample: of the training sessions that share at least one track with ``s``, the
   ``sample_size`` most recent. The data sets have no timestamps, so "recent" is the order of the
   training sessions as given (for the fixed split, a seeded hash order of their ids: a
   deterministic sample that does not depend on the test sessions).
2. Similarity to each sampled session ``n``:

   * SKNN: cosine of the binary vectors, ``|s & n| / sqrt(|s| * |n|)``;
   * V-SKNN: ``s`` as a real-valued vector with a LINEAR position decay (the track at position
     ``p`` of a prefix of length ``L`` weighs ``p / L``: the current track 1, earlier ones less;
     a repeated track keeps its latest position), dot product with the binary ``n``, divided by
     the number of distinct tracks of ``s`` (a constant per query that keeps values in [0, 1]).

3. The ``k`` most similar sampled sessions (ties: more recent first) are the neighbours ``N``.
4. ``score(i) = sum over n in N of sim(s, n) * 1[i in n]``.

SF-SKNN (the paper's sequence-filtered variant, :class:`SequenceFilteredKnn`) takes the SKNN
neighbours but counts only the tracks that came RIGHT AFTER the current track in them:
``score(i) = sum over n in N of sim(s, n) * (times i followed the current track in n)``.

Sparse matrices (``scipy.sparse``) hold the session-track incidence and its transpose; a query
touches only the sessions of its own tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import scipy.sparse as sp

from features.artifacts import SessionLike
from models.baselines.base import F64, I64, Catalogue, Proposal

DEFAULT_K: Final = 100
DEFAULT_SAMPLE: Final = 500


@dataclass(frozen=True, eq=False)
class SessionKnn:
    """SKNN (``decay=False``) or V-SKNN (``decay=True``) over the training sessions."""

    n_tracks: int
    by_session: sp.csr_matrix  # [sessions, tracks] binary: the tracks of each session
    by_track: sp.csr_matrix  # [tracks, sessions] binary: the sessions of each track
    lengths: F64  # distinct tracks per session
    k: int
    sample_size: int
    decay: bool

    @classmethod
    def fit(
        cls,
        sessions: Sequence[SessionLike],
        catalogue: Catalogue,
        *,
        k: int = DEFAULT_K,
        sample_size: int = DEFAULT_SAMPLE,
        decay: bool = False,
    ) -> SessionKnn:
        distinct = [np.unique(seq[seq >= 0]) for seq in catalogue.sequences(sessions)]
        lengths = np.array([len(d) for d in distinct], np.int64)
        rows = np.repeat(np.arange(len(distinct)), lengths)
        cols = np.concatenate(distinct) if distinct else np.empty(0, np.int64)
        shape = (len(distinct), catalogue.n_tracks)
        by_session = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=shape)
        by_session.sort_indices()
        by_track = by_session.T.tocsr()
        by_track.sort_indices()
        return cls(
            catalogue.n_tracks,
            by_session,
            by_track,
            lengths.astype(np.float64),
            k,
            sample_size,
            decay,
        )

    def query_weights(self, prefix: I64) -> tuple[I64, F64, int]:
        """The prefix's distinct known tracks, their weights, and its number of distinct
        tracks (known or not)."""
        n = len(prefix)
        weights = (np.arange(1, n + 1) / n) if self.decay else np.ones(n)
        # The latest position of each track: unique over the reversed prefix.
        tracks, first_in_reversed = np.unique(prefix[::-1], return_index=True)
        latest = n - 1 - first_in_reversed
        known = tracks >= 0
        return tracks[known], weights[latest[known]], len(tracks)

    def neighbours(self, prefix: I64) -> tuple[I64, F64]:
        """The neighbour sessions of the prefix and their similarities, most similar first."""
        tracks, weights, size = self.query_weights(prefix)
        if len(tracks) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        indptr, indices = self.by_track.indptr, self.by_track.indices
        lo, hi = indptr[tracks], indptr[tracks + 1]
        owner = np.repeat(np.arange(len(tracks)), hi - lo)
        sessions = indices[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])]
        n_sessions = len(self.lengths)
        overlap = np.bincount(sessions, weights=weights[owner], minlength=n_sessions)
        candidates = np.flatnonzero(np.bincount(sessions, minlength=n_sessions))
        sample = candidates[-self.sample_size :]  # ascending index: the most recent last
        if self.decay:
            sims = overlap[sample] / size
        else:
            sims = overlap[sample] / np.sqrt(size * self.lengths[sample])
        order = np.lexsort((-sample, -sims))[: self.k]
        return sample[order].astype(np.int64), sims[order]

    def propose(self, prefix: I64) -> Proposal:
        sessions, sims = self.neighbours(prefix)
        if len(sessions) == 0:
            return Proposal.empty()
        indptr, indices = self.by_session.indptr, self.by_session.indices
        lo, hi = indptr[sessions], indptr[sessions + 1]
        tracks = indices[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])]
        return Proposal.from_sums(tracks.astype(np.int64), np.repeat(sims, hi - lo), self.n_tracks)


@dataclass(frozen=True, eq=False)
class SequenceFilteredKnn:
    """SF-SKNN: SKNN neighbours, scoring only the tracks that directly followed the current
    track in them."""

    knn: SessionKnn
    #: per training session: its consecutive (track, next track) pairs, known tracks only
    pairs: tuple[tuple[I64, I64], ...]

    @classmethod
    def fit(
        cls, sessions: Sequence[SessionLike], catalogue: Catalogue, knn: SessionKnn | None = None
    ) -> SequenceFilteredKnn:
        """``knn``: the neighbourhood to use, fitted on the same sessions (by default SKNN's,
        fitted here)."""
        knn = knn or SessionKnn.fit(sessions, catalogue, decay=False)
        pairs = []
        for seq in catalogue.sequences(sessions):
            known = (seq[:-1] >= 0) & (seq[1:] >= 0)
            pairs.append((seq[:-1][known], seq[1:][known]))
        if len(pairs) != len(knn.lengths):
            raise ValueError(f"knn was fitted on {len(knn.lengths)} sessions, not {len(pairs)}")
        return cls(knn, tuple(pairs))

    def propose(self, prefix: I64) -> Proposal:
        current = int(prefix[-1]) if len(prefix) else -1
        if current < 0:
            return Proposal.empty()
        sessions, sims = self.knn.neighbours(prefix)
        followers, weights = [], []
        for n, sim in zip(sessions.tolist(), sims.tolist(), strict=True):
            before, after = self.pairs[n]
            hit = after[before == current]
            followers.append(hit)
            weights.append(np.full(len(hit), sim))
        if not followers:
            return Proposal.empty()
        tracks = np.concatenate(followers)
        return Proposal.from_sums(tracks, np.concatenate(weights), self.knn.n_tracks)
