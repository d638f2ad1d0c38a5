"""The re-ranking by intents (features.steering) on artifacts fitted to synthetic sessions."""

from __future__ import annotations

import numpy as np
import pytest

from features.artifacts import F32, I32, TrackArtifacts, fit_artifacts
from features.candidates import generate_candidates
from features.context import StateContext, state_context
from features.intents import INTENT_TTL_MS, ActiveIntent, IntentKind
from features.session import SessionState, fold_events
from features.steering import (
    SteeringConfig,
    popularity_percentile,
    steer,
    steering_candidates,
    steering_label,
    taste_direction,
)
from models.datasets import synthetic_sessions
from models.labelled_sessions import session_records, split_sessions

K = 10
T0 = 1_764_355_200_000


@pytest.fixture(scope="module")
def artifacts() -> TrackArtifacts:
    return fit_artifacts(split_sessions(synthetic_sessions(300, seed=5))[0])


@pytest.fixture(scope="module")
def listening(artifacts: TrackArtifacts) -> tuple[StateContext, I32, F32]:
    """A session's context after a few plays, its candidates and made-up ranker scores."""
    session = split_sessions(synthetic_sessions(300, seed=5))[2][0]
    state = fold_events(session_records(session)[:12])
    ctx = state_context(state, artifacts)
    tracks = generate_candidates(ctx, artifacts, 200).tracks
    scores = np.random.default_rng(3).normal(size=len(tracks)).astype(np.float32)
    return ctx, tracks, scores


def intent(kind: IntentKind, track: str | None = None) -> ActiveIntent:
    return ActiveIntent(kind, track, T0, T0 + INTENT_TTL_MS)


def cosines(artifacts: TrackArtifacts, tracks: I32, direction: np.ndarray) -> np.ndarray:
    return np.asarray(artifacts.embedding_table64[tracks] @ direction)


def test_no_intent_is_the_rankers_own_order(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    out = steer(ctx, tracks, scores, (), artifacts, k=K)
    assert out.label is None
    assert out.order.tolist() == np.lexsort((tracks, -scores))[:K].tolist()
    # an intent on a track the artifacts do not know shapes nothing either
    unknown = steer(ctx, tracks, scores, (intent("more_like_this", "no-such"),), artifacts, k=K)
    assert unknown.label is None and unknown.order.tolist() == out.order.tolist()


def test_more_like_this_moves_the_list_towards_the_track(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    target = artifacts.track_ids[int(tracks[-1])]  # the ranker's candidate it likes least
    direction = artifacts.embedding_table64[artifacts.index[target]]
    plain = steer(ctx, tracks, scores, (), artifacts, k=K)
    out = steer(ctx, tracks, scores, (intent("more_like_this", target),), artifacts, k=K)
    assert out.label == "more_like_this"
    assert cosines(artifacts, tracks[out.order], direction).mean() > (
        cosines(artifacts, tracks[plain.order], direction).mean() + 0.2
    )


def test_less_like_this_drops_the_track_and_its_near_duplicates(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    plain = steer(ctx, tracks, scores, (), artifacts, k=K)
    rejected = int(tracks[plain.order[0]])
    direction = artifacts.embedding_table64[rejected]
    config = SteeringConfig(near_duplicate=0.8)
    out = steer(
        ctx,
        tracks,
        scores,
        (intent("less_like_this", artifacts.track_ids[rejected]),),
        artifacts,
        k=K,
        config=config,
    )
    assert out.label == "less_like_this"
    picked = tracks[out.order]
    assert rejected not in picked.tolist()
    assert cosines(artifacts, picked, direction).max() < 0.8
    assert (
        cosines(artifacts, picked, direction).mean()
        < cosines(artifacts, tracks[plain.order], direction).mean()
    )


def test_discover_picks_less_popular_tracks(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    plain = steer(ctx, tracks, scores, (), artifacts, k=K)
    out = steer(ctx, tracks, scores, (intent("discover"),), artifacts, k=K)
    assert out.label == "discover"
    steered = popularity_percentile(artifacts, tracks[out.order]).mean()
    assert steered < popularity_percentile(artifacts, tracks[plain.order]).mean() - 0.1


def test_familiar_picks_tracks_close_to_the_listened_taste(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    taste = taste_direction(ctx)
    assert taste.any()
    plain = steer(ctx, tracks, scores, (), artifacts, k=K)
    out = steer(ctx, tracks, scores, (intent("familiar"),), artifacts, k=K)
    assert out.label == "familiar"
    assert cosines(artifacts, tracks[out.order], taste).mean() > (
        cosines(artifacts, tracks[plain.order], taste).mean() + 0.1
    )


def test_skip_risk_demotes_risky_candidates(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    plain = steer(ctx, tracks, scores, (), artifacts, k=K)
    risk = np.zeros(len(tracks), dtype=np.float32)
    risk[plain.order[:3]] = 1.0  # the ranker's top three will be skipped
    out = steer(
        ctx,
        tracks,
        scores,
        (),
        artifacts,
        k=K,
        config=SteeringConfig(skip_risk=10.0),
        skip_risk=risk,
    )
    assert out.label == "auto"
    assert not set(out.order.tolist()) & set(plain.order[:3].tolist())
    both = steering_label((intent("discover"),), artifacts, skip_risk=True)
    assert both == "discover+auto"


def test_diversity_spreads_the_list_over_the_embedding_space(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    target = artifacts.track_ids[int(tracks[0])]

    def closeness(diversity: float) -> float:
        config = SteeringConfig(diversity=diversity, more_like_this=2.0)
        out = steer(
            ctx, tracks, scores, (intent("more_like_this", target),), artifacts, k=K, config=config
        )
        emb = artifacts.embedding_table64[tracks[out.order]]
        sims = emb @ emb.T
        return float(sims[np.triu_indices(len(emb), 1)].mean())

    assert closeness(2.0) < closeness(0.0) - 0.05


def test_steering_is_deterministic(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, scores = listening
    intents = (intent("discover"), intent("less_like_this", artifacts.track_ids[int(tracks[1])]))
    first = steer(ctx, tracks, scores, intents, artifacts, k=K)
    again = steer(ctx, tracks, scores, intents, artifacts, k=K)
    assert first.order.tolist() == again.order.tolist()
    assert first.label == again.label == "discover+less_like_this"
    assert len(set(first.order.tolist())) == K


def test_intents_add_candidates_near_what_they_ask_for(
    artifacts: TrackArtifacts, listening: tuple[StateContext, I32, F32]
) -> None:
    ctx, tracks, _ = listening
    target = ctx.state.recent_tracks[-1]
    at = artifacts.index[target]
    config = SteeringConfig(extra_candidates=15)
    extra = steering_candidates(ctx, (intent("more_like_this", target),), artifacts, tracks, config)
    assert 0 < len(extra) <= 15 and len(set(extra.tolist())) == len(extra)
    assert not set(extra.tolist()) & (set(tracks.tolist()) | set(ctx.played.tolist()) | {at})
    # the best of what is not taken, by cosine to the track
    sims = artifacts.embeddings @ artifacts.embeddings[at]
    free = np.ones(artifacts.n_tracks, bool)
    free[[*tracks.tolist(), *ctx.played.tolist(), at]] = False
    assert sims[extra].min() >= np.sort(sims[free])[-len(extra)] - 1e-12
    discover = steering_candidates(ctx, (intent("discover"),), artifacts, tracks, config)
    assert popularity_percentile(artifacts, discover).mean() < 0.5
    assert (
        steering_candidates(ctx, (intent("less_like_this", target),), artifacts, tracks).size == 0
    )


def test_a_new_session_adds_no_taste_candidates(artifacts: TrackArtifacts) -> None:
    ctx = state_context(SessionState(), artifacts)
    tracks = generate_candidates(ctx, artifacts, 50).tracks
    assert steering_candidates(ctx, (intent("familiar"),), artifacts, tracks).size == 0
