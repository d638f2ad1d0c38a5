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

from dataclasses import dataclass
from typing import Final

import numpy as np

from features.artifacts import I32, TrackArtifacts
from features.context import StateContext

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
    taken = np.zeros(artifacts.n_tracks, dtype=bool)
    taken[ctx.played] = True
    # Each list is long enough that exclusions and overlaps cannot leave the union short.
    spare = len(ctx.played)
    colisten = _take(_top_colisten(ctx, COLISTEN_QUOTA + spare), taken, min(COLISTEN_QUOTA, n))
    taste_quota = min(TASTE_QUOTA, n - len(colisten))
    taste = _take(_top_taste(ctx, artifacts, TASTE_QUOTA + spare), taken, taste_quota)
    rest = n - len(colisten) - len(taste)
    popular = _take(artifacts.popular[: rest + spare + COLISTEN_QUOTA + TASTE_QUOTA], taken, rest)
    tracks = np.concatenate([colisten, taste, popular])
    sources = np.repeat(
        np.array([COLISTEN, TASTE, POPULAR], np.int8), [len(colisten), len(taste), len(popular)]
    )
    return Candidates(tracks, sources)


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
