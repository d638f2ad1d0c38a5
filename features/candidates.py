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
from numpy.typing import NDArray

from features.artifacts import I32, I64, TrackArtifacts
from features.context import MAX_BATCH_CELLS, StateContext, in_chunks

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
    return in_chunks(contexts, chunk, lambda part: _candidates(part, artifacts, n))


def _candidates(
    contexts: Sequence[StateContext], artifacts: TrackArtifacts, n: int
) -> list[Candidates]:
    n_states = len(contexts)
    if n_states == 0:
        return []
    n_tracks = artifacts.n_tracks
    states = np.arange(n_states)
    # Per state: played or picked. The extra last column (always taken) pads track lists.
    taken = np.zeros((n_states, n_tracks + 1), dtype=bool)
    taken[:, n_tracks] = True
    for b, ctx in enumerate(contexts):
        taken[b, ctx.played] = True
    spare = np.array([len(c.played) for c in contexts], dtype=np.int64)  # distinct tracks
    # Co-listen: the first min(quota, n) tracks not played, by score (ties by index). (np.nonzero
    # of a 2-d array is many times slower than np.flatnonzero of a flat boolean mask.)
    scores = np.array([c.colisten for c in contexts])
    width = n_tracks + 1
    flat = np.flatnonzero((scores != 0) > taken)
    rows, cols = np.divmod(flat, width)
    # Sort by state, then score descending (positive float32 values order as their bit patterns
    # do), then index: one int64 key each (chunks keep states * width <= MAX_BATCH_CELLS).
    inverted = 0x7FFFFFFF - scores.view(np.int32).ravel()[flat]
    high, cols = np.divmod(np.sort(((rows << 31) | inverted) * width + cols), width)
    rows = high >> 31
    rank = np.arange(len(rows)) - np.searchsorted(rows, states)[rows]
    pick = rank < max(min(COLISTEN_QUOTA, n), 0)
    colisten_rows, colisten = rows[pick], cols[pick]
    taken[colisten_rows, colisten] = True
    rest = n - np.bincount(colisten_rows, minlength=n_states)
    # Taste: per state a product over all tracks and a partial sort; the take batch-wise.
    neighbours = _top_taste(contexts, artifacts, TASTE_QUOTA + spare)
    taste_rows, taste = _first_free(neighbours, taken, np.minimum(TASTE_QUOTA, rest))
    rest -= np.bincount(taste_rows, minlength=n_states)
    # Popular: the first ``rest`` tracks not taken, in popularity order. At most spare + quotas
    # tracks are taken, so they lie in this prefix.
    head = artifacts.popular[: int((rest + spare).max()) + COLISTEN_QUOTA + TASTE_QUOTA]
    lists = np.broadcast_to(head.astype(np.int64), (n_states, len(head)))
    popular_rows, popular = _first_free(lists, taken, rest)
    # Group by state, keeping the source order: co-listen, taste, popular.
    owner = np.concatenate([colisten_rows, taste_rows, popular_rows])
    tracks = np.concatenate([colisten, taste, popular]).astype(np.int32)
    sources = np.repeat(
        np.array([COLISTEN, TASTE, POPULAR], np.int8), [len(colisten), len(taste), len(popular)]
    )
    grouped = np.argsort(owner, kind="stable")
    tracks, sources = tracks[grouped], sources[grouped]
    bounds = np.searchsorted(owner[grouped], np.arange(n_states + 1)).tolist()
    return [Candidates(tracks[lo:hi], sources[lo:hi]) for lo, hi in pairwise(bounds)]


def _first_free(lists: I64, taken: NDArray[np.bool_], quota: I64) -> tuple[I64, I64]:
    """Per row b of ``lists`` [B, L], the first ``quota[b]`` tracks not taken in row b, in
    list order, as (row, track) pairs grouped by row; marks them taken."""
    free = ~taken[np.arange(len(lists))[:, None], lists]
    free &= np.cumsum(free, axis=1) <= quota[:, None]
    rows, at = np.divmod(np.flatnonzero(free), lists.shape[1])
    tracks = lists[rows, at]
    taken[rows, tracks] = True
    return rows, tracks


def _top_taste(contexts: Sequence[StateContext], artifacts: TrackArtifacts, k: I64) -> I64:
    """[B, max k] the ``k[b]`` nearest neighbours by cosine of each state's taste direction,
    best first (ties by index), padded with ``n_tracks``. No direction: no neighbours."""
    n_tracks = artifacts.n_tracks
    directions = np.array([c.directions for c in contexts])
    listened, recent = directions[:, :, 1], directions[:, :, 3]
    taste = np.where(listened.any(axis=1, keepdims=True), listened, recent).astype(np.float32)
    k = np.minimum(k, n_tracks)
    top = np.full((len(contexts), int(k.max())), n_tracks, dtype=np.int64)
    for b in np.flatnonzero(taste.any(axis=1)).tolist():
        size = int(k[b])
        if size <= 0:
            continue
        neg = -(artifacts.embeddings @ taste[b])
        part = np.argpartition(neg, size - 1)[:size]
        top[b, :size] = part[np.lexsort((part, neg[part]))]
    return top
