"""Baselines that need no sequence: popularity, and item-to-item similarity of track embeddings.

* :class:`Popularity` proposes nothing: every list is the most played tracks not yet played.
* :class:`EmbeddingSimilarity` ranks the catalogue by cosine similarity to the current track in
  the embedding space the ranker's features use (:func:`features.artifacts.fit_artifacts`: a
  truncated SVD of the positive PMI matrix of within-session co-occurrence, unit rows), fitted
  here on the training sessions it is given. An unknown current track, or one without
  co-occurrences, falls back to popularity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.artifacts import F32, SessionLike, fit_artifacts
from models.baselines.base import I64, Catalogue, Proposal


class Popularity:
    @classmethod
    def fit(cls, sessions: Sequence[SessionLike], catalogue: Catalogue) -> Popularity:
        return cls()

    def propose(self, prefix: I64) -> Proposal:
        return Proposal.empty()


@dataclass(frozen=True, eq=False)
class EmbeddingSimilarity:
    embeddings: F32  # [T, D], unit rows, in catalogue order

    @classmethod
    def fit(
        cls, sessions: Sequence[SessionLike], catalogue: Catalogue, seed: int = 7
    ) -> EmbeddingSimilarity:
        artifacts = fit_artifacts(sessions, seed=seed)
        if artifacts.track_ids != catalogue.track_ids:
            raise ValueError("the artifacts' tracks differ from the catalogue's")
        return cls(artifacts.embeddings)

    def propose(self, prefix: I64) -> Proposal:
        current = int(prefix[-1]) if len(prefix) else -1
        if current < 0 or not self.embeddings[current].any():
            return Proposal.empty()
        scores = self.embeddings @ self.embeddings[current]
        return Proposal.dense(scores.astype(np.float64))
