"""Offline steering evaluation on real held-out sessions (``nowplaying evaluate --steering``).

Every position of every test session is a query: the state right after that play's
``track_start`` (:func:`models.ranking_queries.session_queries`, the stream's own fold); the
target is the actual next track. Lists are those of :class:`models.steered.SteeredRecommender`
(the worker's call), top 10.

**Intents.** Each query is answered unsteered and with one intent added to its state
(``ActiveIntent`` at the state's event time), and each intent is judged by its own measure,
over the queries where it can act (its list is labelled):

* ``discover``: the median popularity percentile of the list (lower: less popular);
* ``familiar``: the mean cosine of the list to the listened-taste centroid;
* ``more_like_this`` (the current track): the mean cosine of the list to that track;
* ``less_like_this`` (the current track): the share of the list within cosine
  ``near_duplicate`` of that track (its near-duplicates).

Cost: HR@10 and MRR@10 of the actual next track, steered minus unsteered (the listener did not
ask for anything in the log, so this is what steering gives up on that log).

**Automatic steering** (:mod:`models.skip.auto`): at the positions after two early skips in a
row (the two plays before the current one, by their logged outcomes), the listened-hit rate@10
(the next track is in the list and was listened through) with and without it, and HR@10; also
over every position. Intervals: 95% bootstrap over sessions, shared resamples, so differences
are paired (:class:`models.ranking_metrics.SessionBootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from features.artifacts import TrackArtifacts
from features.context import state_contexts
from features.intents import INTENT_TTL_MS, ActiveIntent, IntentKind
from features.session import SessionState
from features.steering import DEFAULT_STEERING, SteeringConfig, popularity_percentile
from features.steering import taste_direction as taste_of
from models.labelled_sessions import Session
from models.ranking_metrics import SessionBootstrap
from models.ranking_queries import Query, session_queries
from models.recommender import Recommender
from models.skip.auto import AutoPolicy, AutoSteering
from models.skip.scorer import SkipRiskModel
from models.steered import SteeredRecommender

K: Final = 10
BATCH: Final = 200
INTENTS: Final[tuple[IntentKind, ...]] = (
    "discover",
    "familiar",
    "more_like_this",
    "less_like_this",
)
#: Each intent's measure, and the direction its intent should move it.
MEASURES: Final = {
    "discover": ("median popularity percentile", -1),
    "familiar": ("mean cosine to the listened taste", +1),
    "more_like_this": ("mean cosine to the steered track", +1),
    "less_like_this": ("share of near-duplicates of the rejected track", -1),
}
F64 = NDArray[np.float64]
Fig = dict[str, float]


@dataclass
class Lists:
    tracks: NDArray[np.int64]  # [Q, K] artifact indices, -1 past the list's end
    steered: NDArray[np.bool_]  # [Q] the list has a steering label
    auto: NDArray[np.bool_]  # [Q] its label includes "auto"


@dataclass
class SteeringEvaluation:
    sessions: int = 0
    queries: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    #: {intent: {"queries", "measure", "unsteered", "steered", "shift", "hr_*", "mrr_*"}}
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: {"after_two_early_skips" | "all": {"queries", "triggered", "listened_hit_*", ...}}
    auto: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Queries:
    items: list[Query]
    session_no: NDArray[np.int64]
    target: NDArray[np.int64]
    listened: NDArray[np.bool_]
    after_two_early: NDArray[np.bool_]
    current: NDArray[np.int64]
    taste: F64  # [Q, D]


def collect(test: Sequence[Session], artifacts: TrackArtifacts) -> _Queries:
    items, session_no, after = [], [], []
    for no, session in enumerate(test):
        for q in session_queries(session):
            items.append(q)
            session_no.append(no)
            before = session.plays[max(q.position - 3, 0) : q.position - 1]
            after.append(len(before) == 2 and all(p.outcome == "skip_early" for p in before))
    tastes, currents = [], []
    for start in range(0, len(items), BATCH):
        for ctx in state_contexts([q.state for q in items[start : start + BATCH]], artifacts):
            tastes.append(taste_of(ctx))
            currents.append(ctx.current)
    dim = artifacts.embedding_table64.shape[1]
    return _Queries(
        items,
        np.array(session_no, np.int64),
        np.array([artifacts.index.get(q.next_track, -2) for q in items], np.int64),
        np.array([q.next_outcome == "listened" for q in items], bool),
        np.array(after, bool),
        np.array(currents, np.int64),
        np.array(tastes, np.float64).reshape(len(items), dim),
    )


def with_intent(state: SessionState, kind: IntentKind) -> SessionState:
    ts = state.last_ts or 0
    track = state.current_track if kind in ("more_like_this", "less_like_this") else None
    return replace(state, intents=(ActiveIntent(kind, track, ts, ts + INTENT_TTL_MS),))


def make_lists(
    steered: SteeredRecommender, states: Sequence[SessionState], progress: bool, desc: str
) -> Lists:
    index = steered.artifacts.index
    tracks = np.full((len(states), K), -1, np.int64)
    labels: list[str | None] = []
    starts = range(0, len(states), BATCH)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        for i, lst in enumerate(steered.recommend_steered(states[start : start + BATCH], K)):
            tracks[start + i, : len(lst)] = [index[r.track_id] for r in lst]
            labels.append(lst.steering)
    return Lists(
        tracks,
        np.array([x is not None for x in labels], bool),
        np.array([x is not None and "auto" in x.split("+") for x in labels], bool),
    )


def measure(kind: str, lists: Lists, q: _Queries, art: TrackArtifacts, near: float) -> F64:
    valid = lists.tracks >= 0
    emb = art.embedding_table64[np.where(valid, lists.tracks, -1)]  # [Q, K, D]; -1: zero row
    count = np.maximum(valid.sum(axis=1), 1)
    if kind == "discover":
        pct = popularity_percentile(art, lists.tracks.clip(-1).astype(np.int32).ravel())
        pct = np.where(valid.ravel(), pct, np.nan).reshape(lists.tracks.shape)
        return np.asarray(np.nan_to_num(np.nanmedian(pct, axis=1)), np.float64)
    if kind == "familiar":
        return np.asarray(np.einsum("qkd,qd->q", emb, q.taste) / count, np.float64)
    steered_track = art.embedding_table64[q.current]  # -1: zero row
    cos = np.einsum("qkd,qd->qk", emb, steered_track)
    if kind == "more_like_this":
        return np.asarray(cos.sum(axis=1) / count, np.float64)
    dup = ((cos >= near) | (lists.tracks == q.current[:, None])) & valid
    return np.asarray(dup.sum(axis=1) / count, np.float64)


def hits(lists: Lists, q: _Queries) -> tuple[F64, F64]:
    """Per query: HR@K and MRR@K of the actual next track."""
    at = lists.tracks == q.target[:, None]
    found = at.any(axis=1)
    rank = at.argmax(axis=1) + 1
    return found.astype(np.float64), np.where(found, 1.0 / rank, 0.0)


def evaluate_steering(
    recommender: Recommender,
    test: Sequence[Session],
    *,
    config: SteeringConfig = DEFAULT_STEERING,
    skip_model: SkipRiskModel | None = None,
    policy: AutoPolicy | None = None,
    progress: bool = False,
) -> SteeringEvaluation:
    art = recommender.artifacts
    q = collect(test, art)
    boot = SessionBootstrap(q.session_no, len(test))
    plain = SteeredRecommender(recommender, config)
    states = [x.state for x in q.items]
    base = make_lists(plain, states, progress, "unsteered")
    base_hr, base_mrr = hits(base, q)
    out = SteeringEvaluation(sessions=len(test), queries=len(q.items), config=asdict(config))
    for kind in INTENTS:
        lists = make_lists(plain, [with_intent(s, kind) for s in states], progress, kind)
        mask = lists.steered
        before = measure(kind, base, q, art, config.near_duplicate)
        after = measure(kind, lists, q, art, config.near_duplicate)
        hr, mrr = hits(lists, q)
        out.intents[kind] = {
            "queries": int(mask.sum()),
            "measure": MEASURES[kind][0],
            "unsteered": _est(boot, before, mask),
            "steered": _est(boot, after, mask),
            "shift": _est(boot, after - before, mask),
            "hr_unsteered": _est(boot, base_hr, mask),
            "hr_steered": _est(boot, hr, mask),
            "mrr_unsteered": _est(boot, base_mrr, mask),
            "mrr_steered": _est(boot, mrr, mask),
            "mrr_shift": _est(boot, mrr - base_mrr, mask),
        }
    if skip_model is not None:
        auto = SteeredRecommender(recommender, config, AutoSteering(skip_model, policy))
        lists = make_lists(auto, states, progress, "auto")
        hr, mrr = hits(lists, q)
        listened_base, listened_auto = base_hr * q.listened, hr * q.listened
        everywhere = np.ones(len(q.items), bool)
        for name, mask in (("after_two_early_skips", q.after_two_early), ("all", everywhere)):
            out.auto[name] = {
                "queries": int(mask.sum()),
                "triggered": int((lists.auto & mask).sum()),
                "listened_hit_without": _est(boot, listened_base, mask),
                "listened_hit_with": _est(boot, listened_auto, mask),
                "listened_hit_shift": _est(boot, listened_auto - listened_base, mask),
                "hr_without": _est(boot, base_hr, mask),
                "hr_with": _est(boot, hr, mask),
                "mrr_without": _est(boot, base_mrr, mask),
                "mrr_with": _est(boot, mrr, mask),
            }
    return out


def _est(boot: SessionBootstrap, values: F64, mask: NDArray[np.bool_]) -> Fig:
    return boot.estimate(np.asarray(values, np.float64), mask).to_json()
