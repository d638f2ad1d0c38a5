"""Re-ranking a session's candidates by the listener's active intents.

:func:`steer` orders one state's scored candidates by a combined score: the ranker's score,
standardised per list (zero mean, unit deviation), plus an intent term per active intent
(:mod:`features.intents`), each weighted by :class:`SteeringConfig`:

* ``more_like_this`` (track t): ``+ more_like_this * cosine(candidate, t)``;
* ``less_like_this`` (track t): ``- less_like_this * cosine(candidate, t)``; candidates within
  cosine ``near_duplicate`` of t (t itself included) are dropped;
* ``discover``: ``- discover * popularity percentile - discover_novelty * cosine(candidate,
  listened taste)``: less popular, and further from what the session knows;
* ``familiar``: ``+ familiar * cosine(candidate, listened taste)``;
* automatic steering, when the session is going wrong (a per-candidate predicted probability of
  an early skip, from a skip-risk model, ``models.skip.auto``): ``- skip_risk * risk -
  away_from_skipped * cosine(candidate, skipped-tracks centroid)``; labelled ``auto``;

then picks the top ``k`` greedily with maximal marginal relevance over the embeddings: each
next pick maximises its combined score minus ``diversity`` times its largest cosine to the
tracks picked before it. Embeddings are the artifacts' unit rows (a track unknown to the
artifacts has the zero vector, cosine 0); the listened taste is the state's listened-taste
centroid, the recent tracks' centroid before anything was listened through.

Intents that need other tracks than the generators proposed add them
(:func:`steering_candidates`): the embedding neighbours of a ``more_like_this`` track, the less
popular neighbours of the taste for ``discover``, more neighbours of the taste for ``familiar``.
They are scored by the ranker with the others (``models.steered``).

With no intent and no skip risk the order is the ranker's (score descending, ties by track
index, which follows track id), exactly the unsteered list, and the label is None.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from features.artifacts import F32, I32, I64, TrackArtifacts
from features.context import StateContext
from features.intents import ActiveIntent

F64 = NDArray[np.float64]

#: The label of a list the automatic steering shaped (a skip-risk vector was given).
AUTO: Final = "auto"


@dataclass(frozen=True, slots=True)
class SteeringConfig:
    """Weights of the combined score (see the module docstring); the ranker's standardised
    score has unit deviation, cosines lie in [-1, 1], percentiles and risks in [0, 1].

    ``more_like_this``, ``discover`` and ``away_from_skipped`` are tuned on the validation
    split (``nowplaying evaluate --steering``, models/README.md): the smallest weights that
    move their measures by the targets (cosine to the steered track +0.2, median popularity
    percentile -30 points); any ``away_from_skipped`` > 0 lowered the listened-hit rate after
    two early skips (1.0: -2% relative), so it is 0 unless set."""

    ranker: float = 1.0  # weight of the standardised ranker score
    more_like_this: float = 16.0  # x cosine to the steered track
    less_like_this: float = 2.0  # x cosine to the rejected track (subtracted)
    near_duplicate: float = 0.9  # drop candidates this close (cosine) to a rejected track
    discover: float = 9.0  # x popularity percentile (subtracted)
    discover_novelty: float = 0.5  # x cosine to the listened taste (subtracted)
    familiar: float = 1.5  # x cosine to the listened taste
    skip_risk: float = 2.0  # auto: x predicted skip risk (subtracted)
    away_from_skipped: float = 0.0  # auto: x cosine to the skipped tracks' centroid (subtracted)
    diversity: float = 0.3  # MMR: x largest cosine to the tracks picked before (subtracted)
    extra_candidates: int = 40  # tracks added per intent that adds some
    discover_pool: int = 400  # discover: the taste's nearest tracks its extras come from


DEFAULT_STEERING: Final = SteeringConfig()


class SteeredOrder(NamedTuple):
    """The top-``k`` of one list: positions into its candidates, best first, and the label of
    what shaped it (None: the ranker's own order)."""

    order: I64
    combined: F64  # the combined score of each pick (the ranker's score when unsteered)
    label: str | None


def steering_label(
    intents: Sequence[ActiveIntent], artifacts: TrackArtifacts, skip_risk: bool = False
) -> str | None:
    """What shapes a list: the kinds of the intents that can act (a track intent on a track
    the artifacts do not know cannot), oldest first, then ``auto`` (a skip-risk vector),
    joined by ``+``."""
    kinds: list[str] = []
    for intent in intents:
        if intent.track_id is not None and intent.track_id not in artifacts.index:
            continue
        if intent.kind != "reset" and intent.kind not in kinds:
            kinds.append(intent.kind)
    if skip_risk:
        kinds.append(AUTO)
    return "+".join(kinds) or None


def steer(
    ctx: StateContext,
    tracks: I32,
    scores: F32,
    intents: Sequence[ActiveIntent],
    artifacts: TrackArtifacts,
    *,
    k: int,
    config: SteeringConfig = DEFAULT_STEERING,
    skip_risk: F32 | None = None,
) -> SteeredOrder:
    """The steered top ``k`` of candidates ``tracks`` (artifact indices) with ranker
    ``scores`` (see the module docstring). Pure and deterministic."""
    label = steering_label(intents, artifacts, skip_risk is not None)
    if label is None:
        order = np.lexsort((tracks, -scores))[:k].astype(np.int64)
        return SteeredOrder(order, scores[order].astype(np.float64), None)
    raw = scores.astype(np.float64)
    spread = raw.std()
    combined = config.ranker * ((raw - raw.mean()) / spread if spread > 0 else raw * 0.0)
    emb = artifacts.embedding_table64.take(tracks.astype(np.int64), axis=0)
    keep = np.ones(len(tracks), dtype=bool)
    taste = taste_direction(ctx)
    for intent in intents:
        at = artifacts.index.get(intent.track_id, -1) if intent.track_id is not None else -1
        if intent.kind == "more_like_this" and at >= 0:
            combined += config.more_like_this * (emb @ artifacts.embedding_table64[at])
        elif intent.kind == "less_like_this" and at >= 0:
            near = emb @ artifacts.embedding_table64[at]
            combined -= config.less_like_this * near
            keep &= (near < config.near_duplicate) & (tracks != at)
        elif intent.kind == "discover":
            combined -= config.discover * popularity_percentile(artifacts, tracks)
            combined -= config.discover_novelty * (emb @ taste)
        elif intent.kind == "familiar":
            combined += config.familiar * (emb @ taste)
    if skip_risk is not None:
        combined -= config.skip_risk * skip_risk.astype(np.float64)
        combined -= config.away_from_skipped * (emb @ ctx.directions[:, 2])
    order = _mmr(np.flatnonzero(keep), combined, emb, tracks, k=k, diversity=config.diversity)
    return SteeredOrder(order, combined[order], label)


def _mmr(pool: I64, combined: F64, emb: F64, tracks: I32, *, k: int, diversity: float) -> I64:
    """Greedy maximal marginal relevance: ``k`` picks from ``pool``, each maximising its
    combined score minus ``diversity`` x its largest cosine to the picks before (ties: the
    lower track index)."""
    pool = pool[np.lexsort((tracks[pool], -combined[pool]))]  # best first
    if diversity <= 0 or len(pool) <= 1:
        return pool[:k].astype(np.int64)
    picked: list[int] = []
    closest = np.full(len(pool), -np.inf)
    free = np.ones(len(pool), dtype=bool)
    vectors = emb[pool]
    base = combined[pool]
    for _ in range(min(k, len(pool))):
        value = np.where(free, base - diversity * np.maximum(closest, 0.0), -np.inf)
        best = int(np.argmax(value))  # first of equal values: the better ranked
        picked.append(best)
        free[best] = False
        closest = np.maximum(closest, vectors @ vectors[best])
    return pool[np.array(picked, dtype=np.int64)]


def taste_direction(ctx: StateContext) -> F64:
    """The listened-taste centroid (unit, or zeros), the recent tracks' before anything was
    listened through."""
    listened = ctx.directions[:, 1]
    direction: F64 = listened if listened.any() else ctx.directions[:, 3]
    return direction


_PERCENTILES: weakref.WeakKeyDictionary[TrackArtifacts, F64] = weakref.WeakKeyDictionary()


def popularity_percentile(artifacts: TrackArtifacts, tracks: I32) -> F64:
    """Per track index, the share of the catalogue played at most as often (1.0: the most
    played; an unknown track, -1, reads 0.0)."""
    table = _PERCENTILES.get(artifacts)
    if table is None:
        plays = artifacts.plays.astype(np.float64)
        ranks = np.searchsorted(np.sort(plays), plays, side="right") / max(len(plays), 1)
        table = np.append(ranks, 0.0)
        _PERCENTILES[artifacts] = table
    picked: F64 = table.take(tracks.astype(np.int64))
    return picked


def steering_candidates(
    ctx: StateContext,
    intents: Sequence[ActiveIntent],
    artifacts: TrackArtifacts,
    exclude: I32,
    config: SteeringConfig = DEFAULT_STEERING,
) -> I32:
    """Tracks the intents add to the candidates: distinct, neither played in the session nor in
    ``exclude`` (the generators' candidates), in a deterministic order."""
    n = artifacts.n_tracks
    taken = np.zeros(n + 1, dtype=bool)
    taken[ctx.played] = True
    taken[exclude] = True
    taken[n] = True
    table = artifacts.embedding_table64[:n]
    taste = taste_direction(ctx)
    picks: list[I64] = []
    want = config.extra_candidates
    for intent in intents:
        at = artifacts.index.get(intent.track_id, -1) if intent.track_id is not None else -1
        if intent.kind == "more_like_this" and at >= 0:
            taken[at] = True
            score = table @ table[at]
        elif intent.kind == "familiar" and taste.any():
            score = table @ taste
        elif intent.kind == "discover" and taste.any():
            near = table @ taste
            pool = _best(near, taken, config.discover_pool)
            score = np.full(n, -np.inf)
            score[pool] = near[pool] - popularity_percentile(artifacts, pool.astype(np.int32))
        else:
            continue
        best = _best(score, taken, want)
        taken[best] = True
        picks.append(best)
    if not picks:
        return np.empty(0, dtype=np.int32)
    return np.concatenate(picks).astype(np.int32)


def _best(score: F64, taken: NDArray[np.bool_], count: int) -> I64:
    """The ``count`` best-scoring track indices not taken (ties: lower index), best first."""
    free = np.flatnonzero(~taken[: len(score)] & np.isfinite(score))
    if len(free) == 0 or count <= 0:
        return np.empty(0, dtype=np.int64)
    values = score[free]
    if len(free) > count:
        part = np.argpartition(-values, count - 1)[:count]
        free, values = free[part], values[part]
    return free[np.lexsort((free, -values))].astype(np.int64)
