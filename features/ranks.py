"""Rank features (features version 3): where each baseline puts the candidate, over the catalogue.

The ranker's count and score columns say how strong a candidate is for one method; these say
where that method RANKS it among all tracks not yet played in the session, which is what
decides rank 1. For every state, each method's dense score over the catalogue is built once and
sorted; a candidate's rank is the number of unplayed tracks with a strictly higher score (0: the
method's first choice). Ranks are over the whole catalogue, never over the candidate list, so a
row does not depend on which other candidates it is scored with (training rows hold sampled
negatives, served rows the generator's list).

Methods: ``t1`` the count after the current track (transitions-1), ``t2`` (count after the last
2, then after the current track; transitions-2's order), ``t3`` (after the last 3, last 2,
current; transitions-3's order), ``knn`` the V-SKNN score, ``seq`` the sequence model's logit.
Then how many of those five put the candidate first / in their top 10 (only with a positive
score; ``seq`` always has one), and the backoff: the longest context (3, 2, 1 tracks; 0: none)
that was followed in training, and the candidate's share of that context's continuations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from features.artifacts import F32, I64, TrackArtifacts
from features.context import StateContext

RANK_FEATURES: Final = (
    "t1_log_rank",  # log1p(unplayed tracks with a higher count after the current track)
    "t2_log_rank",  # ... in transitions-2's order (after the last 2, then the current)
    "t3_log_rank",  # ... in transitions-3's order (after the last 3, 2, then the current)
    "knn_log_rank",  # ... with a higher V-SKNN score
    "seq_unplayed_log_rank",  # ... with a higher sequence-model logit (0 without a model)
    "top1_votes",  # of t1, t2, t3, knn, seq: how many rank the candidate first
    "top10_votes",  # ... in their top 10
    "backoff_level",  # longest context followed in training: 3, 2, 1 (current track) or 0
    "backoff_share",  # the candidate's share of that context's continuations
)
N_RANK_FEATURES: Final = len(RANK_FEATURES)
#: Bits of each count in the packed lexicographic keys (every count is below 2**18: fewer
#: transitions than that in any training split of the data sets).
_BITS: Final = 18
_CAP: Final = (1 << _BITS) - 1


def dense_counts(contexts: Sequence[StateContext], artifacts: TrackArtifacts) -> NDArray[np.int64]:
    """[B, 3, T] counts of every track after the current track, the last 2 and the last 3."""
    n_tracks = artifacts.n_tracks
    out = np.zeros((len(contexts), 3, n_tracks), np.int64)
    current = np.array([c.current for c in contexts], np.int64)
    known = np.flatnonzero(current >= 0)
    if len(known):
        of, entry = artifacts.transition_rows(current[known])
        out[known[of], 0, artifacts.trans_indices[entry]] = artifacts.trans_count[entry]
    for level, table, codes in (
        (1, artifacts.ngram2, [c.context2 for c in contexts]),
        (2, artifacts.ngram3, [c.context3 for c in contexts]),
    ):
        lo, hi = table.spans(np.array(codes, np.int64))
        lengths = hi - lo
        owner = np.repeat(np.arange(len(contexts)), lengths)
        entry = np.arange(len(owner)) + (lo - np.cumsum(lengths) + lengths)[owner]
        out[owner, level, table.keys[entry] % n_tracks] = table.counts[entry]
    return np.minimum(out, _CAP)


def fill_ranks(
    out: F32,
    contexts: Sequence[StateContext],
    tracks: Sequence[I64],
    artifacts: TrackArtifacts,
) -> None:
    """Write the :data:`RANK_FEATURES` columns of each state's rows (``out`` stacked in order,
    ``tracks`` the candidates of each state; -1: unknown track)."""
    n_tracks = artifacts.n_tracks
    counts = dense_counts(contexts, artifacts)
    start = 0
    for b, (ctx, cand) in enumerate(zip(contexts, tracks, strict=True)):
        rows = out[start : start + len(cand)]
        start += len(cand)
        if not len(cand):
            continue
        at = np.where(cand >= 0, cand, 0)
        unknown = cand < 0
        c1, c2, c3 = counts[b, 0], counts[b, 1], counts[b, 2]
        methods: list[tuple[NDArray[np.float64] | NDArray[np.int64], bool]] = [
            (c1, False),
            ((c2 << _BITS) | c1, False),
            ((c3 << (2 * _BITS)) | (c2 << _BITS) | c1, False),
            (ctx.knn[:n_tracks].astype(np.float64), False),
        ]
        if ctx.sequence is not None:
            methods.append((ctx.sequence[:n_tracks].astype(np.float64), True))
        top1 = np.zeros(len(cand), np.float32)
        top10 = np.zeros(len(cand), np.float32)
        for col, (scores, dense) in enumerate(methods):
            rank = _ranks(scores, ctx.played, at, dense)
            positive = np.ones(len(cand), bool) if dense else scores[at] > 0
            positive &= ~unknown
            rows[:, col] = np.log1p(rank.astype(np.float32))
            top1 += (positive & (rank == 0)).astype(np.float32)
            top10 += (positive & (rank < 10)).astype(np.float32)
        if ctx.sequence is None:
            rows[:, 4] = 0.0
        rows[:, 5] = top1
        rows[:, 6] = top10
        level, share = _backoff(c1, c2, c3, at)
        rows[:, 7] = level
        rows[:, 8] = np.where(unknown, 0.0, share)


def _ranks(
    scores: NDArray[np.float64] | NDArray[np.int64], played: NDArray[np.int32], at: I64, dense: bool
) -> I64:
    """Per candidate, how many unplayed tracks score strictly higher (for a sparse method only
    the positive scores are sorted: every other track scores 0)."""
    masked = scores.copy()
    masked[played] = -np.inf if masked.dtype.kind == "f" else -1
    ordered = np.sort(masked if dense else masked[masked > 0])
    higher: I64 = len(ordered) - np.searchsorted(ordered, scores[at], "right")
    return higher


def _backoff(
    c1: NDArray[np.int64], c2: NDArray[np.int64], c3: NDArray[np.int64], at: I64
) -> tuple[float, F32]:
    for level, counts in ((3, c3), (2, c2), (1, c1)):
        total = int(counts.sum())
        if total > 0:
            return float(level), (counts[at] / total).astype(np.float32)
    return 0.0, np.zeros(len(at), np.float32)
