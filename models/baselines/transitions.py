"""Transition baselines: what followed the last ``n`` tracks in training sessions, with backoff.

:class:`Transitions` of order ``n`` counts, for every context of ``m = 1..n`` consecutive tracks
of a training session, which track came right after it. For a prefix it proposes the successors
of its last ``n``, ``n-1``, ..., 1 tracks with the keys ``[count after the last n, count after
the last n-1, ..., count after the last track]``: lists are ordered by the longest context first
and BACK OFF to shorter ones (the ties of a longer context, and the tracks it never saw followed
by, are ordered by the next shorter context), then to popularity (:func:`models.baselines.base.
top_k`). A context holding a track the training split never saw matches nothing.

Order 1 is the co-listen count from the current track, today's baseline (ties by popularity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.artifacts import SessionLike
from models.baselines.base import F64, I64, Catalogue, Proposal

Context = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Transitions:
    """Successor counts of every context of 1..``order`` tracks."""

    order: int
    n_tracks: int
    #: per context length m (index m - 1): context -> (successor tracks, their counts)
    tables: tuple[dict[Context, tuple[I64, F64]], ...]

    @classmethod
    def fit(cls, sessions: Sequence[SessionLike], catalogue: Catalogue, order: int) -> Transitions:
        counts: list[dict[Context, dict[int, int]]] = [{} for _ in range(order)]
        for seq in catalogue.sequences(sessions):
            items = seq.tolist()
            for end in range(1, len(items)):
                nxt = items[end]
                for m in range(1, min(order, end) + 1):
                    followers = counts[m - 1].setdefault(tuple(items[end - m : end]), {})
                    followers[nxt] = followers.get(nxt, 0) + 1
        tables = tuple(
            {
                ctx: (
                    np.fromiter(followers.keys(), np.int64, len(followers)),
                    np.fromiter(followers.values(), np.float64, len(followers)),
                )
                for ctx, followers in table.items()
            }
            for table in counts
        )
        return cls(order, catalogue.n_tracks, tables)

    def successors(self, context: Context) -> tuple[I64, F64]:
        """The tracks that followed this context in training, with their counts."""
        found = self.tables[len(context) - 1].get(context)
        if found is None:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        return found

    def propose(self, prefix: I64) -> Proposal:
        items = tuple(prefix.tolist())
        lengths = range(min(self.order, len(items)), 0, -1)  # longest context first
        parts = [self.successors(items[len(items) - m :]) for m in lengths]
        levels = self.order
        if not parts or all(len(t) == 0 for t, _ in parts):
            return Proposal.empty(levels)
        tracks = np.unique(np.concatenate([t for t, _ in parts]))
        keys = np.zeros((len(tracks), levels), np.float64)
        # Column j holds the counts after the last (order - j) tracks; a prefix shorter than
        # the order leaves the longest columns at zero.
        for m, (succ, count) in zip(lengths, parts, strict=True):
            keys[np.searchsorted(tracks, succ), self.order - m] = count
        return Proposal(tracks, keys)
