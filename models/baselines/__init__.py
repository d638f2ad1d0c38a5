"""Next-track baselines that rank the FULL catalogue, fitted on training sessions only.

Every method plugs in as a :class:`~models.baselines.base.Method`: ``fit(training sessions,
catalogue)`` returns a :class:`~models.baselines.base.NextTrackScorer`, whose proposal for a
session prefix :func:`~models.baselines.base.top_k` turns into a list excluding played tracks.
:data:`BASELINES` are the ones the evaluation runs (:mod:`models.served_evaluation`).
"""

from __future__ import annotations

from typing import Final

from models.baselines.base import (
    Catalogue,
    Method,
    NextTrackScorer,
    Proposal,
    StateAwareScorer,
    top_k,
)
from models.baselines.knn import SequenceFilteredKnn, SessionKnn
from models.baselines.sequence import SequenceModel
from models.baselines.simple import EmbeddingSimilarity, Popularity
from models.baselines.transitions import Transitions

BASELINES: Final[tuple[Method, ...]] = (
    Method("popularity", "most played in training", Popularity.fit),
    Method(
        "transitions-1",
        "first-order transitions: co-listen count from the current track",
        lambda s, c: Transitions.fit(s, c, order=1),
    ),
    Method(
        "transitions-2",
        "transitions from the last 2 tracks, backing off to the last one",
        lambda s, c: Transitions.fit(s, c, order=2),
    ),
    Method(
        "transitions-3",
        "transitions from the last 3 tracks, backing off to 2, then 1",
        lambda s, c: Transitions.fit(s, c, order=3),
    ),
    Method(
        "sknn",
        "SKNN: k=100 neighbours of a 500-session sample, cosine of binary vectors",
        lambda s, c: SessionKnn.fit(s, c, decay=False),
    ),
    Method(
        "v-sknn",
        "V-SKNN: as SKNN, the session weighted by a linear position decay, dot product",
        lambda s, c: SessionKnn.fit(s, c, decay=True),
    ),
    Method(
        "sf-sknn",
        "SF-SKNN: the SKNN neighbours, only the tracks that followed the current one in them",
        SequenceFilteredKnn.fit,
    ),
    Method(
        "embedding",
        "cosine to the current track, PPMI-SVD track embeddings (32 dimensions)",
        EmbeddingSimilarity.fit,
    ),
    Method(
        "sequence",
        "the next-track sequence model alone: GRU over tracks and outcomes, full softmax",
        SequenceModel.fit,
    ),
)

__all__ = [
    "BASELINES",
    "Catalogue",
    "EmbeddingSimilarity",
    "Method",
    "NextTrackScorer",
    "Popularity",
    "Proposal",
    "SequenceFilteredKnn",
    "SequenceModel",
    "SessionKnn",
    "StateAwareScorer",
    "Transitions",
    "top_k",
]
