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

from features.artifacts import I32, TrackArtifacts
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
    states = np.arange(n_states)
    taken = np.zeros((n_states, artifacts.n_tracks), dtype=bool)  # per state: played or picked
    spare = np.array([len(c.played) for c in contexts], dtype=np.int64)
    if spare.any():
        taken[np.repeat(states, spare), np.concatenate([c.played for c in contexts])] = True
    # Co-listen: the first min(quota, n) tracks not played, by score (ties by index).
    scores = np.stack([c.colisten[:-1] for c in contexts])
    # (np.nonzero of a 2-d array is many times slower than of a flat boolean mask.)
    rows, cols = np.divmod(np.flatnonzero(scores != 0), artifacts.n_tracks)
    # By state, then score descending, then index (a stable sort of the flat order): positive
    # float32 values order as their bit patterns do.
    bits = scores[rows, cols].view(np.int32).astype(np.int64)
    order = np.argsort((rows << 31) | (0x7FFFFFFF - bits), kind="stable")
    rows, cols = rows[order], cols[order]
    fresh = ~taken[rows, cols]
    rows, cols = rows[fresh], cols[fresh]
    rank = np.arange(len(rows)) - np.searchsorted(rows, states)[rows]
    pick = rank < max(min(COLISTEN_QUOTA, n), 0)
    colisten_rows, colisten = rows[pick], cols[pick]
    taken[colisten_rows, colisten] = True
    rest = n - np.bincount(colisten_rows, minlength=n_states)
    # Taste: per state (a product over all tracks, then a partial sort).
    taste = []
    for b, ctx in enumerate(contexts):
        quota = min(TASTE_QUOTA, int(rest[b]))
        taste.append(
            _take(_top_taste(ctx, artifacts, TASTE_QUOTA + int(spare[b])), taken[b], quota)
        )
    taste_count = np.array([len(t) for t in taste], dtype=np.int64)
    rest -= taste_count
    # Popular: the first ``rest`` tracks not taken, in popularity order.
    limit = rest + spare + COLISTEN_QUOTA + TASTE_QUOTA  # a prefix long enough for any state
    popular = artifacts.popular[: int(limit.max())]
    free = ~taken[:, popular]
    free &= np.arange(len(popular)) < limit[:, None]
    free &= np.cumsum(free, axis=1) <= rest[:, None]
    popular_rows, at = np.divmod(np.flatnonzero(free), len(popular))
    # Group by state, keeping the source order: co-listen, taste, popular.
    owner = np.concatenate([colisten_rows, np.repeat(states, taste_count), popular_rows])
    tracks = np.concatenate([colisten, *taste, popular[at]]).astype(np.int32)
    sources = np.repeat(
        np.array([COLISTEN, TASTE, POPULAR], np.int8),
        [len(colisten), int(taste_count.sum()), len(at)],
    )
    grouped = np.argsort(owner, kind="stable")
    tracks, sources = tracks[grouped], sources[grouped]
    bounds = np.searchsorted(owner[grouped], np.arange(n_states + 1)).tolist()
    return [Candidates(tracks[lo:hi], sources[lo:hi]) for lo, hi in pairwise(bounds)]


def _take(tracks: I32, taken: np.ndarray, k: int) -> I32:
    """The first ``k`` tracks not taken yet; marks them taken."""
    fresh: I32 = tracks[~taken[tracks]][: max(k, 0)]
    taken[fresh] = True
    return fresh


def _top_colisten(ctx: StateContext, k: int) -> I32:
    """Tracks with a positive co-listen score, best first (ties: track index, i.e. id order)."""
    scores = ctx.colisten[:-1]
    nonzero = np.flatnonzero(scores)
    if len(nonzero) == 0:
        return np.empty(0, np.int32)
    order = np.lexsort((nonzero, -scores[nonzero]))[:k]
    top: I32 = nonzero[order].astype(np.int32)
    return top


def _top_taste(ctx: StateContext, artifacts: TrackArtifacts, k: int) -> I32:
    """Nearest neighbours of the taste direction by cosine, best first (ties by index)."""
    direction = ctx.taste_direction
    if k <= 0 or not direction.any():
        return np.empty(0, np.int32)
    sims = artifacts.embeddings @ direction.astype(np.float32)
    k = min(k, len(sims))
    part = np.argpartition(-sims, k - 1)[:k]
    order = np.lexsort((part, -sims[part]))
    top: I32 = part[order].astype(np.int32)
    return top
