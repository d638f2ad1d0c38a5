"""Ranking a batch's track starts with the models served right now.

A :class:`ModelSnapshot` is what one batch ranks with: a ranker per A/B test variant (one under
``None`` outside a test) and the assignment of listeners to variants. The pipeline takes ONE
snapshot per batch (:class:`ModelSource`), so a model swapped in while a batch is in flight
(:mod:`streams.reload`) serves from the next batch on, and every list names the version of the
ranker that computed it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from features.session import SessionState
from nowplaying.events import Recommendation

log = logging.getLogger(__name__)


class Ranker(Protocol):
    """What the pipeline needs of :class:`models.recommender.Recommender`."""

    @property
    def model_version(self) -> str: ...

    def recommend(self, states: Sequence[SessionState], k: int) -> list[list[Recommendation]]: ...


class Assigner(Protocol):
    """What the pipeline needs of :class:`models.experiments.Experiment`."""

    def assign(self, user_id: str) -> str: ...


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """The rankers one batch uses: by variant name (``None`` outside an A/B test)."""

    rankers: Mapping[str | None, Ranker]
    assigner: Assigner | None = None

    def variant_of(self, user_id: str) -> str | None:
        """The user's A/B test variant (None outside a test)."""
        return None if self.assigner is None else self.assigner.assign(user_id)

    def version_of(self, variant: str | None) -> str:
        return self.rankers[variant].model_version


class ModelSource(Protocol):
    """Hands out the snapshot to rank the next batch with (:class:`streams.reload.ModelWatcher`
    swaps it)."""

    def snapshot(self) -> ModelSnapshot: ...


class FixedModels:
    """A source that always serves the same snapshot."""

    def __init__(self, snapshot: ModelSnapshot) -> None:
        self._snapshot = snapshot

    def snapshot(self) -> ModelSnapshot:
        return self._snapshot


class Ranked(NamedTuple):
    """A list computed now: the variant and model version that computed it."""

    variant: str | None
    model_version: str
    recs: list[Recommendation]


def rank_states(
    models: ModelSnapshot, due: Mapping[str, tuple[str, SessionState]], k: int
) -> dict[str, Ranked]:
    """Lists by trigger event id for ``due`` (event id -> (user id, state)): ONE ranker call
    per variant. An event the ranker fails on is left out."""
    groups: dict[str | None, dict[str, SessionState]] = {}
    for event_id, (user_id, state) in due.items():
        groups.setdefault(models.variant_of(user_id), {})[event_id] = state
    out: dict[str, Ranked] = {}
    for variant, group in groups.items():
        ranker = models.rankers[variant]
        version = ranker.model_version
        for eid, recs in _rank_group(ranker, group, k).items():
            out[eid] = Ranked(variant, version, recs)
    return out


def _rank_group(
    ranker: Ranker, due: Mapping[str, SessionState], k: int
) -> dict[str, list[Recommendation]]:
    try:
        lists = ranker.recommend(list(due.values()), k)
        return dict(zip(due, lists, strict=True))
    except Exception:
        log.exception("ranking a batch of %d failed; ranking one by one", len(due))
    out: dict[str, list[Recommendation]] = {}
    for event_id, state in due.items():
        try:
            out[event_id] = ranker.recommend([state], k)[0]
        except Exception:
            log.exception("ranking failed for event %s", event_id)
    return out


def list_source(recs: Sequence[Recommendation]) -> str:
    """``popular`` when the whole list is the popularity fallback, else ``model``."""
    if not recs:
        return "empty"
    return "popular" if all(r.source == "popular" for r in recs) else "model"
