"""Higher-order transitions: what followed the last 2 (and 3) tracks in training sessions.

An :class:`NgramTable` of order ``m`` counts, for every ``m`` consecutive tracks of a training
session (the context), which track came right after them. A context of track indices
``(t1, ..., tm)`` is coded ``((t1 * T + t2) * T + ...) * T + tm`` and a (context, next track)
pair ``code * T + next`` (int64: ``T ** 4`` stays far below 2**63 for any catalogue this
project meets, checked at fit time); the table keeps the sorted pair keys with their counts, so

* the count of a (context, candidate) pair is one ``searchsorted``,
* a context's continuations are one contiguous slice (``[code * T, (code + 1) * T)``), in
  track-index order, and its total is a difference of prefix sums.

A context holding an unknown track (index -1) has code -1 and matches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]

#: The orders of the context tables kept in the artifacts (order 1 is the co-listen CSR).
NGRAM_ORDERS: Final = (2, 3)


@dataclass(frozen=True, eq=False)
class NgramTable:
    order: int
    n_tracks: int
    keys: I64  # sorted context_code * T + next
    counts: F32  # aligned with keys
    cumulative: F64 = field(init=False)  # [len(keys) + 1] prefix sums of counts

    def __post_init__(self) -> None:
        cum = np.zeros(len(self.keys) + 1, np.float64)
        np.cumsum(self.counts, out=cum[1:])
        object.__setattr__(self, "cumulative", cum)

    def context_codes(self, contexts: I64) -> I64:
        """[B] codes of contexts given as [B, order] track indices (oldest first); -1 when a
        track is unknown (-1)."""
        codes = np.zeros(len(contexts), np.int64)
        for j in range(self.order):
            codes = codes * self.n_tracks + contexts[:, j]
        known = (contexts >= 0).all(axis=1) if len(contexts) else np.zeros(0, bool)
        return np.where(known, codes, -1)

    def pair_counts(self, codes: I64, tracks: I64) -> F32:
        """Counts of (context code, track) pairs; 0 for code -1, track -1 or an unseen pair."""
        out = np.zeros(len(codes), np.float32)
        if len(self.keys) == 0 or len(codes) == 0:
            return out
        valid = (codes >= 0) & (tracks >= 0)
        keys = codes * self.n_tracks + tracks
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = valid & (self.keys[pos] == keys)
        out[hit] = self.counts[pos[hit]]
        return out

    def spans(self, codes: I64) -> tuple[I64, I64]:
        """Per context code, the [lo, hi) slice of its continuations in ``keys``."""
        start = np.where(codes >= 0, codes, 0) * self.n_tracks
        lo = np.searchsorted(self.keys, start)
        hi = np.searchsorted(self.keys, start + self.n_tracks)
        empty = codes < 0
        return np.where(empty, 0, lo), np.where(empty, 0, hi)

    def totals(self, codes: I64) -> F32:
        """Per context code, how many times the context was followed by anything."""
        lo, hi = self.spans(codes)
        total: F32 = (self.cumulative[hi] - self.cumulative[lo]).astype(np.float32)
        return total


def fit_ngrams(seqs: Sequence[I32], n_tracks: int, order: int) -> NgramTable:
    """Count every (``order`` consecutive tracks, next track) of the sequences."""
    if float(n_tracks) ** (order + 1) >= 2.0**62:
        raise ValueError(f"{n_tracks} tracks: order-{order} keys do not fit int64")
    parts = []
    for seq in seqs:
        s = seq.astype(np.int64)
        if len(s) <= order:
            continue
        key = np.zeros(len(s) - order, np.int64)
        for j in range(order + 1):
            key = key * n_tracks + s[j : len(s) - order + j]
        parts.append(key)
    if not parts:
        return NgramTable(order, n_tracks, np.empty(0, np.int64), np.empty(0, np.float32))
    keys, counts = np.unique(np.concatenate(parts), return_counts=True)
    return NgramTable(order, n_tracks, keys.astype(np.int64), counts.astype(np.float32))
