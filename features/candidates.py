"""Candidate generation: which tracks the ranker scores for one session.

The union, in this priority order, of

* ``ngram``: the tracks that followed the session's last 3 tracks in training sessions, then
  those that followed its last 2 (by the order-3 count, then the order-2 count; at most
  :data:`NGRAM_QUOTA`);
* ``colisten``: tracks that followed the session's recent tracks in training sessions, by the
  recency-weighted co-listen score (at most :data:`COLISTEN_QUOTA`);
* ``sequence``: the sequence model's best tracks, when the model has one (at most
  :data:`SEQUENCE_QUOTA`);
* ``knn``: tracks of the session's nearest-neighbour training sessions, by the V-SKNN score
  (:mod:`features.neighbours`; at most :data:`KNN_QUOTA`);
* ``two_step``: tracks that usually come two steps after the current one (at most
  :data:`TWO_STEP_QUOTA`);
* ``taste``: nearest neighbours (cosine) of the listened-taste centroid in embedding space, or of
  the recent tracks' centroid before anything was listened through (at most
  :data:`TASTE_QUOTA`);
* ``popular``: the most played tracks, filling the list up to ``n`` (default 200).

Tracks already played in the session are excluded. A track proposed by several generators keeps
the first source in that order; within a source, ties go to the lower track index. A new
session, or one whose tracks are all unknown, gets the popular tracks. Vectorised numpy, no
per-candidate Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

import numpy as np
from numpy.typing import NDArray

from features.artifacts import F32, I32, I64, TrackArtifacts
from features.context import MAX_BATCH_CELLS, StateContext, in_chunks

SOURCES: Final = ("ngram", "colisten", "sequence", "knn", "two_step", "taste", "popular")
NGRAM, COLISTEN, SEQUENCE, KNN, TWO_STEP, TASTE, POPULAR = range(7)
DEFAULT_CANDIDATES: Final = 200
NGRAM_QUOTA: Final = 50
COLISTEN_QUOTA: Final = 100
SEQUENCE_QUOTA: Final = 50
KNN_QUOTA: Final = 50
TWO_STEP_QUOTA: Final = 30
TASTE_QUOTA: Final = 20
#: The scored generators in priority order, each with its quota (then taste and popular).
PLAN: tuple[tuple[int, int], ...] = (
    (NGRAM, NGRAM_QUOTA),
    (COLISTEN, COLISTEN_QUOTA),
    (SEQUENCE, SEQUENCE_QUOTA),
    (KNN, KNN_QUOTA),
    (TWO_STEP, TWO_STEP_QUOTA),
)
#: The order-2 count is capped at this in the ``ngram`` score (order-3 count * 2**12 + it).
_NGRAM_CAP: Final = 4095.0


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
    """``generate_candidates`` of each context, computed for the whole batch at once (in
    chunks of bounded size). Each result is independent of the others in the batch."""
    chunk = max(1, MAX_BATCH_CELLS // max(artifacts.n_tracks, 1))
    return in_chunks(contexts, chunk, lambda part: _candidates(part, artifacts, n))


def ngram_scores(contexts: Sequence[StateContext], artifacts: TrackArtifacts) -> F32:
    """[B, T + 1] order-3 count * 2**12 + min(order-2 count, 4095) of every track."""
    width = artifacts.n_tracks + 1
    out = np.zeros((len(contexts), width), np.float32)
    for table, codes, scale in (
        (artifacts.ngram3, [c.context3 for c in contexts], 4096.0),
        (artifacts.ngram2, [c.context2 for c in contexts], 1.0),
    ):
        lo, hi = table.spans(np.array(codes, np.int64))
        lengths = hi - lo
        owner = np.repeat(np.arange(len(contexts)), lengths)
        entry = np.arange(len(owner)) + (lo - np.cumsum(lengths) + lengths)[owner]
        counts = table.counts[entry]
        values = counts * np.float32(scale) if scale > 1 else np.minimum(counts, _NGRAM_CAP)
        out[owner, table.keys[entry] % artifacts.n_tracks] += values
    return out


def _candidates(
    contexts: Sequence[StateContext], artifacts: TrackArtifacts, n: int
) -> list[Candidates]:
    n_states = len(contexts)
    if n_states == 0:
        return []
    n_tracks = artifacts.n_tracks
    # Per state: played or picked. The extra last column (always taken) pads track lists.
    taken = np.zeros((n_states, n_tracks + 1), dtype=bool)
    taken[:, n_tracks] = True
    for b, ctx in enumerate(contexts):
        taken[b, ctx.played] = True
    spare = np.array([len(c.played) for c in contexts], dtype=np.int64)  # distinct tracks
    rest = np.full(n_states, max(n, 0), np.int64)
    picked: list[tuple[int, I64, I64]] = []

    def take(source: int, scores: F32, quota: int, positive: bool = True) -> None:
        rows, cols = _top_dense(scores, taken, np.minimum(quota, rest), positive)
        rest[:] -= np.bincount(rows, minlength=n_states)
        picked.append((source, rows, cols))

    with_sequence = [c.sequence for c in contexts if c.sequence is not None]
    for source, quota in PLAN:
        if source == NGRAM:
            take(NGRAM, ngram_scores(contexts, artifacts), quota)
        elif source == COLISTEN:
            take(COLISTEN, np.array([c.colisten for c in contexts]), quota)
        elif source == SEQUENCE and len(with_sequence) == n_states:
            take(SEQUENCE, np.array(with_sequence), quota, positive=False)
        elif source == KNN:
            take(KNN, np.array([c.knn for c in contexts]), quota)
        elif source == TWO_STEP:
            take(TWO_STEP, np.array([c.two_step for c in contexts]), quota)
    # Taste: per state a product over all tracks and a partial sort; the take batch-wise.
    neighbours = _top_taste(contexts, artifacts, TASTE_QUOTA + n - rest + spare)
    taste_rows, taste = _first_free(neighbours, taken, np.minimum(TASTE_QUOTA, rest))
    rest -= np.bincount(taste_rows, minlength=n_states)
    picked.append((TASTE, taste_rows, taste))
    # Popular: the first ``rest`` tracks not taken, in popularity order. At most spare + n
    # tracks are taken, so they lie in this prefix.
    head = artifacts.popular[: int(spare.max()) + n + 1]
    lists = np.broadcast_to(head.astype(np.int64), (n_states, len(head)))
    popular_rows, popular = _first_free(lists, taken, rest)
    picked.append((POPULAR, popular_rows, popular))
    # Group by state, keeping the source order.
    owner = np.concatenate([rows for _, rows, _ in picked])
    tracks = np.concatenate([cols for _, _, cols in picked]).astype(np.int32)
    sources = np.repeat(
        np.array([s for s, _, _ in picked], np.int8), [len(rows) for _, rows, _ in picked]
    )
    grouped = np.argsort(owner, kind="stable")
    tracks, sources = tracks[grouped], sources[grouped]
    bounds = np.searchsorted(owner[grouped], np.arange(n_states + 1)).tolist()
    return [Candidates(tracks[lo:hi], sources[lo:hi]) for lo, hi in pairwise(bounds)]


def _top_dense(
    scores: F32, taken: NDArray[np.bool_], quota: I64, positive: bool
) -> tuple[I64, I64]:
    """Per row b, the ``quota[b]`` best-scoring tracks not taken (with ``positive``, only
    scores > 0), best first, ties by index, as (row, track) pairs grouped by row; marks them
    taken."""
    empty = np.empty(0, np.int64)
    if not len(quota) or int(quota.max()) <= 0:
        return empty, empty
    width = scores.shape[1]
    if positive:
        # Only the positive cells: one int64 key each (state, score descending, index);
        # positive float32 values order as their bit patterns do.
        flat = np.flatnonzero((scores > 0) > taken)
        rows, cols = np.divmod(flat, width)
        inverted = 0x7FFFFFFF - scores.view(np.int32).ravel()[flat].astype(np.int64)
        high, cols = np.divmod(np.sort(((rows << 31) | inverted) * width + cols), width)
        rows = high >> 31
    else:
        k = min(int(quota.max()), width)
        masked = np.where(taken, np.float32(-np.inf), scores)
        part = np.argpartition(-masked, k - 1, axis=1)[:, :k]
        kth = masked[np.arange(len(masked))[:, None], part].min(axis=1, keepdims=True)
        greater = masked > kth
        equal = masked == kth
        equal &= np.cumsum(equal, axis=1) <= k - greater.sum(axis=1, keepdims=True)
        chosen = (greater | equal) & np.isfinite(masked)
        rows, cols = np.divmod(np.flatnonzero(chosen), width)
        order = np.lexsort((cols, -masked[rows, cols], rows))
        rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, np.arange(len(quota)))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < quota[rows]
    rows, cols = rows[keep], cols[keep]
    taken[rows, cols] = True
    return rows, cols


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
