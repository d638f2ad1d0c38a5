"""What every next-track method shares: the catalogue, the scorer protocol and the top-K rule.

A :class:`Method` is fitted on TRAINING sessions only and returns a :class:`NextTrackScorer`.
Given a session prefix (the tracks started so far, oldest first, the current track last, as
catalogue indices, -1 for a track the training split never saw), a scorer proposes tracks of
the catalogue with lexicographic keys (:class:`Proposal`): higher is better, the first column
first. :func:`top_k` turns a proposal into a list over the FULL catalogue: tracks already
played in the session are excluded, proposed tracks come first by their keys, then every other
track by popularity; all remaining ties are broken by popularity, then by track id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from features.artifacts import SessionLike
from features.session import SessionState

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Catalogue:
    """The tracks of the training sessions, indexed in track id order, with their play counts."""

    track_ids: tuple[str, ...]
    plays: F64
    index: dict[str, int] = field(init=False)
    #: track indices, most played first (ties by id)
    popular: I64 = field(init=False)
    #: popularity rank of each track (0: most played)
    popularity_rank: I64 = field(init=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "index", {t: i for i, t in enumerate(self.track_ids)})
        popular = np.argsort(-self.plays, kind="stable").astype(np.int64)
        rank = np.empty(len(popular), np.int64)
        rank[popular] = np.arange(len(popular))
        setattr_(self, "popular", popular)
        setattr_(self, "popularity_rank", rank)

    @classmethod
    def of(cls, sessions: Sequence[SessionLike]) -> Catalogue:
        counts: dict[str, int] = {}
        for s in sessions:
            for p in s.plays:
                counts[p.track_id] = counts.get(p.track_id, 0) + 1
        ids = tuple(sorted(counts))
        return cls(ids, np.array([counts[t] for t in ids], np.float64))

    @property
    def n_tracks(self) -> int:
        return len(self.track_ids)

    def indices(self, track_ids: Sequence[str]) -> I64:
        """Catalogue indices of the tracks, -1 for unknown ones."""
        get = self.index.get
        return np.fromiter((get(t, -1) for t in track_ids), np.int64, count=len(track_ids))

    def sequences(self, sessions: Sequence[SessionLike]) -> list[I64]:
        """Each session's plays as catalogue indices."""
        return [self.indices([p.track_id for p in s.plays]) for s in sessions]


@dataclass(frozen=True, slots=True, eq=False)
class Proposal:
    """Proposed tracks (distinct catalogue indices) with keys ``[len(tracks), levels]``."""

    tracks: I64
    keys: F64

    @classmethod
    def empty(cls, levels: int = 1) -> Proposal:
        return cls(np.empty(0, np.int64), np.empty((0, levels), np.float64))

    @classmethod
    def dense(cls, scores: F64) -> Proposal:
        """Every track with its score (one level)."""
        return cls(np.arange(len(scores), dtype=np.int64), scores[:, None])

    @classmethod
    def from_sums(cls, tracks: I64, weights: F64, n_tracks: int) -> Proposal:
        """Tracks with the sum of their weights (one level); repeated tracks add up."""
        if len(tracks) == 0:
            return cls.empty()
        summed = np.bincount(tracks, weights=weights, minlength=n_tracks)
        hit = np.flatnonzero(np.bincount(tracks, minlength=n_tracks))
        return cls(hit.astype(np.int64), summed[hit][:, None].astype(np.float64))


class NextTrackScorer(Protocol):
    """A fitted method: proposes tracks to play after a session prefix."""

    def propose(self, prefix: I64) -> Proposal: ...


@runtime_checkable
class StateAwareScorer(NextTrackScorer, Protocol):
    """A scorer that also reads the session state the stream holds (e.g. earlier outcomes);
    the evaluation calls :meth:`propose_state` instead of ``propose`` when a scorer has it."""

    def propose_state(self, prefix: I64, state: SessionState) -> Proposal: ...


@dataclass(frozen=True)
class Method:
    """A named next-track method: ``fit(training sessions, catalogue)`` gives its scorer."""

    name: str
    description: str
    fit: Callable[[Sequence[SessionLike], Catalogue], NextTrackScorer]


def top_k(proposal: Proposal, catalogue: Catalogue, played: I64, k: int) -> I64:
    """The ``k`` best tracks of the catalogue after the proposal, none of them played."""
    n = catalogue.n_tracks
    excluded = np.zeros(n, bool)
    excluded[played[played >= 0]] = True
    tracks, keys = proposal.tracks, proposal.keys
    keep = ~excluded[tracks]
    tracks, keys = tracks[keep], keys[keep]
    if len(tracks) > k and keys.shape[1] == 1:
        # One level: only the tracks scoring at least the k-th best score can make the list.
        kth = np.partition(keys[:, 0], len(keys) - k)[len(keys) - k]
        near = keys[:, 0] >= kth
        tracks, keys = tracks[near], keys[near]
    order = np.lexsort((catalogue.popularity_rank[tracks], *(-keys[:, ::-1].T)))
    head = tracks[order[:k]]
    if len(head) >= k:
        return head
    excluded[head] = True
    rest = catalogue.popular[~excluded[catalogue.popular]][: k - len(head)]
    return np.concatenate([head, rest])
