"""Candidate generation: which tracks the ranker scores for one session.

The union, in this priority order, of

* ``colisten``: tracks that followed the session's recent tracks in training sessions, by the
  recency-weighted co-listen score (at most :data:`COLISTEN_QUOTA`);
* ``taste``: nearest neighbours (cosine) of the listened-taste centroid in embedding space, or of
  the recent tracks' centroid before anything was listened through (at most
  :data:`TASTE_QUOTA`);
* ``popular``: the most played tracks, filling the list up to ``n`` (default 200).

Tracks already played in the session are excluded. A track proposed by several generators keeps
the first source in that order. A new session, or one whose tracks are all unknown, gets the
popular tracks. Vectorised numpy, no per-candidate Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

import numpy as np

from features.artifacts import I32, I64, TrackArtifacts
from features.context import MAX_BATCH_CELLS, StateContext

SOURCES: Final = ("colisten", "taste", "popular")
COLISTEN, TASTE, POPULAR = 0, 1, 2
DEFAULT_CANDIDATES: Final = 200
COLISTEN_QUOTA: Final = 100
TASTE_QUOTA: Final = 60


@dataclass(frozen=True, slots=True, eq=False)
class Candidates:
    tracks: I32  # artifact track indices, distinct
    sources: np.ndarray  # int8 index into SOURCES, aligned with tracks

    def __len__(self) -> int:
        return len(self.tracks)

    def source_names(self) -> list[str]:
        return [SOURCES[s] for s in self.sources]


def generate_candidates(
    ctx: StateContext, artifacts: TrackArtifacts, n: int = DEFAULT_CANDIDATES
) -> Candidates:
    return generate_candidates_many([ctx], artifacts, n)[0]


def generate_candidates_many(
    contexts: Sequence[StateContext], artifacts: TrackArtifacts, n: int = DEFAULT_CANDIDATES
) -> list[Candidates]:
    """``generate_candidates`` of each context, the co-listen and popular parts computed for
    the whole batch at once (in chunks of bounded size). Each result is independent of the
    others in the batch."""
    chunk = max(1, MAX_BATCH_CELLS // max(artifacts.n_tracks, 1))
    if len(contexts) <= chunk:
        return _candidates(contexts, artifacts, n)
    return [
        c
        for i in range(0, len(contexts), chunk)
        for c in _candidates(contexts[i : i + chunk], artifacts, n)
    ]


def _candidates(
    contexts: Sequence[StateContext], artifacts: TrackArtifacts, n: int
) -> list[Candidates]:
    n_states = len(contexts)
    if n_states == 0:
        return []
    n_tracks = artifacts.n_tracks
    states = np.arange(n_states)
    taken = np.zeros((n_states, n_tracks), dtype=bool)  # per state: played or picked
    for b, ctx in enumerate(contexts):
        taken[b, ctx.played] = True
    spare = np.array([len(c.played) for c in contexts], dtype=np.int64)  # distinct tracks
    # Co-listen: the first min(quota, n) tracks not played, by score (ties by index). (np.nonzero
    # of a 2-d array is many times slower than np.flatnonzero of a flat boolean mask.)
    scores = np.array([c.colisten[:-1] for c in contexts])
    flat = np.flatnonzero((scores != 0) > taken)
    rows, cols = np.divmod(flat, n_tracks)
    # By state, then score descending (positive float32 values order as their bit patterns
    # do), then index (a stable sort of the flat order).
    order = np.argsort((rows << 31) - scores.view(np.int32).ravel()[flat], kind="stable")
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, states)[rows]
    pick = rank < max(min(COLISTEN_QUOTA, n), 0)
    colisten_rows, colisten = rows[pick], cols[pick]
    taken[colisten_rows, colisten] = True
    rest = n - np.bincount(colisten_rows, minlength=n_states)
    # Taste: per state a product over all tracks and a partial sort; the rest batch-wise.
    taste_rows, taste = _top_taste(contexts, artifacts, TASTE_QUOTA + spare)
    fresh = ~taken[taste_rows, taste]
    fresh_upto = np.cumsum(fresh)
    fresh_before = np.concatenate(([0], fresh_upto))[np.searchsorted(taste_rows, states)]
    quota = np.minimum(TASTE_QUOTA, rest)
    fresh &= fresh_upto - fresh_before[taste_rows] <= quota[taste_rows]
    taste_rows, taste = taste_rows[fresh], taste[fresh]
    taken[taste_rows, taste] = True
    taste_count = np.bincount(taste_rows, minlength=n_states)
    rest -= taste_count
    # Popular: the first ``rest`` tracks not taken, in popularity order. At most spare + quotas
    # tracks are taken, so they lie in this prefix.
    popular = artifacts.popular[: int((rest + spare).max()) + COLISTEN_QUOTA + TASTE_QUOTA]
    free = ~taken[:, popular]
    free &= np.cumsum(free, axis=1) <= rest[:, None]
    popular_rows, at = np.divmod(np.flatnonzero(free), len(popular))
    # Group by state, keeping the source order: co-listen, taste, popular.
    owner = np.concatenate([colisten_rows, taste_rows, popular_rows])
    tracks = np.concatenate([colisten, taste, popular[at]]).astype(np.int32)
    sources = np.repeat(
        np.array([COLISTEN, TASTE, POPULAR], np.int8), [len(colisten), len(taste), len(at)]
    )
    grouped = np.argsort(owner, kind="stable")
    tracks, sources = tracks[grouped], sources[grouped]
    bounds = np.searchsorted(owner[grouped], np.arange(n_states + 1)).tolist()
    return [Candidates(tracks[lo:hi], sources[lo:hi]) for lo, hi in pairwise(bounds)]


def _top_taste(
    contexts: Sequence[StateContext], artifacts: TrackArtifacts, k: I64
) -> tuple[I64, I64]:
    """The ``k[b]`` nearest neighbours by cosine of each state's taste direction, best first
    (ties by index), as (state, track) pairs grouped by state. No direction: no neighbours."""
    directions = np.array([c.directions for c in contexts])
    listened, recent = directions[:, :, 1], directions[:, :, 3]
    taste = np.where(listened.any(axis=1, keepdims=True), listened, recent).astype(np.float32)
    use = np.flatnonzero(taste.any(axis=1) & (k > 0))
    k = np.minimum(k, artifacts.n_tracks)
    tops = []
    for b in use.tolist():
        neg = -(artifacts.embeddings @ taste[b])
        part = np.argpartition(neg, k[b] - 1)[: k[b]]
        tops.append(part[np.lexsort((part, neg[part]))])
    if not tops:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.repeat(use, k[use]), np.concatenate(tops)
