"""The recommender the stream worker calls: the ranker's lists, steered by the session's intents.

:class:`SteeredRecommender` wraps a :class:`models.recommender.Recommender` (its public
``score``, ``top_k``, ``artifacts`` and ``model_version`` only). For a batch of states it

1. adds, for each state with active intents, the tracks its intents ask for
   (:func:`features.steering.steering_candidates`, source ``steer``) to the generated
   candidates, so that they get feature rows and are scored in the batch's ONE onnxruntime call;
2. optionally asks a :class:`SkipRiskScorer` for a per-candidate skip risk of each state;
3. orders each steered state's candidates with :func:`features.steering.steer`; the others get
   the ranker's own ``top_k``, exactly the list an unwrapped Recommender gives.

Each list is a :class:`SteeredList`: the recommendations and the label of what shaped them
(``steering``: e.g. ``"more_like_this"``, ``"discover+auto"``; None when nothing did).
A steered list's ``score`` is still the ranker's score of each track; the order is the steered
one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

import numpy as np

from features.artifacts import F32, TrackArtifacts
from features.candidates import SOURCES, Candidates
from features.context import StateContext
from features.session import SessionState
from features.steering import DEFAULT_STEERING, SteeringConfig, steer, steering_candidates
from models.recommender import Recommender, Scored
from nowplaying.events import Recommendation

#: ``Recommendation.source`` of a track an intent added to the candidates.
STEER_SOURCE: Final = "steer"
#: Its code in ``Candidates.sources`` (not an index of ``features.candidates.SOURCES``).
_STEER_CODE: Final = -1


class SteeredList(list[Recommendation]):
    """A top-k list (a plain list of recommendations) that knows what shaped it."""

    def __init__(self, recommendations: Iterable[Recommendation], steering: str | None) -> None:
        super().__init__(recommendations)
        self.steering = steering


def steering_of(recommendations: Sequence[Recommendation]) -> str | None:
    """The label of what shaped a list (None for a ranker's plain list)."""
    return recommendations.steering if isinstance(recommendations, SteeredList) else None


class SkipRiskScorer(Protocol):
    """A skip-risk model: per scored state, the predicted skip risk of each candidate
    (aligned with ``Scored.candidates``), or None to leave that state unsteered by risk."""

    @property
    def needs_rows(self) -> bool:
        """Whether it reads ``Scored.rows`` (the ranker then keeps them)."""
        ...

    def skip_risks(self, scored: Sequence[Scored]) -> list[F32 | None]: ...


class SteeredRecommender:
    """A Recommender whose lists follow the sessions' intents (see the module docstring)."""

    def __init__(
        self,
        recommender: Recommender,
        config: SteeringConfig = DEFAULT_STEERING,
        skip_risk: SkipRiskScorer | None = None,
    ) -> None:
        self.recommender = recommender
        self.config = config
        self.skip_risk = skip_risk
        self._track_ids = np.array(recommender.artifacts.track_ids, dtype=object)

    @property
    def model_version(self) -> str:
        return self.recommender.model_version

    @property
    def artifacts(self) -> TrackArtifacts:
        return self.recommender.artifacts

    def recommend(self, states: Sequence[SessionState], k: int) -> list[list[Recommendation]]:
        """Top-``k`` lists, one per state, best first; each a :class:`SteeredList`."""
        out: list[list[Recommendation]] = list(self.recommend_steered(states, k))
        return out

    def recommend_steered(self, states: Sequence[SessionState], k: int) -> list[SteeredList]:
        keep_rows = self.skip_risk is not None and self.skip_risk.needs_rows
        scored = self.recommender.score(states, keep_rows=keep_rows, extend=self._extend)
        risks = self.skip_risk.skip_risks(scored) if self.skip_risk is not None else None
        plain = [
            i
            for i, s in enumerate(scored)
            if not s.context.state.intents and (risks is None or risks[i] is None)
        ]
        lists: list[SteeredList | None] = [None] * len(scored)
        ranked = self.recommender.top_k([scored[i] for i in plain], k)
        for i, recs in zip(plain, ranked, strict=True):
            lists[i] = SteeredList(recs, None)
        for i, s in enumerate(scored):
            if lists[i] is None:
                lists[i] = self._steered(s, k, None if risks is None else risks[i])
        return [x for x in lists if x is not None]

    def _extend(
        self, contexts: Sequence[StateContext], cands: list[Candidates]
    ) -> list[Candidates]:
        """Each steered state's candidates with the tracks its intents add."""
        out = []
        for ctx, k in zip(contexts, cands, strict=True):
            intents = ctx.state.intents
            extra = (
                steering_candidates(ctx, intents, self.artifacts, k.tracks, self.config)
                if intents
                else None
            )
            if extra is None or len(extra) == 0:
                out.append(k)
                continue
            codes = np.full(len(extra), _STEER_CODE, dtype=np.int8)
            out.append(
                Candidates(
                    np.concatenate([k.tracks, extra]).astype(np.int32),
                    np.concatenate([k.sources.astype(np.int8), codes]),
                )
            )
        return out

    def _steered(self, scored: Scored, k: int, risk: F32 | None) -> SteeredList:
        tracks = scored.candidates.tracks
        picked = steer(
            scored.context,
            tracks,
            scored.scores,
            scored.context.state.intents,
            self.artifacts,
            k=k,
            config=self.config,
            skip_risk=risk,
        )
        at = picked.order
        ids = self._track_ids[tracks[at]].tolist()
        values = scored.scores[at].tolist()
        codes = scored.candidates.sources[at].tolist()
        recs = [
            Recommendation(
                track_id=ids[j],
                score=values[j],
                rank=j + 1,
                source=STEER_SOURCE if codes[j] == _STEER_CODE else SOURCES[codes[j]],
            )
            for j in range(len(at))
        ]
        return SteeredList(recs, picked.label)
