"""The steered recommender on a real (tiny) model: unsteered lists are the ranker's, bit for
bit; steered ones follow the intents, their extra candidates scored in the same ONNX call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
from prometheus_client import REGISTRY

from features.artifacts import F32
from features.candidates import SOURCES
from features.intents import INTENT_TTL_MS, ActiveIntent
from features.session import SessionState
from features.steering import SteeringConfig
from models.datasets import synthetic_sessions
from models.labelled_sessions import split_sessions
from models.ranking_queries import session_queries
from models.recommender import Recommender, Scored
from models.steered import STEER_SOURCE, SteeredList, SteeredRecommender, steering_of
from nowplaying.events import Recommendation
from tests.support.tiny_models import shared_two_versions

K = 10


@pytest.fixture(scope="module")
def recommender() -> Recommender:
    folder, latest, _ = shared_two_versions()
    return Recommender.load(folder / latest)


@pytest.fixture(scope="module")
def states() -> list[SessionState]:
    test = split_sessions(synthetic_sessions(200, seed=7))[2]
    return [q.state for s in test[:4] for q in session_queries(s) if q.state.position > 3][:12]


def with_intent(state: SessionState, kind: str, track: str | None = None) -> SessionState:
    ts = state.last_ts or 0
    active = ActiveIntent(kind, track, ts, ts + INTENT_TTL_MS)  # type: ignore[arg-type]
    return replace(state, intents=(active,))


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_states_without_intents_get_the_rankers_lists_bit_for_bit(
    recommender: Recommender, states: list[SessionState]
) -> None:
    steered = SteeredRecommender(recommender)
    lists = steered.recommend(states, K)
    assert lists == recommender.recommend(states, K)
    for mine, theirs in zip(lists, recommender.recommend(states, K), strict=True):
        assert [r.model_dump_json() for r in mine] == [r.model_dump_json() for r in theirs]
        assert steering_of(mine) is None
    assert steered.model_version == recommender.model_version


def test_a_mixed_batch_is_scored_in_one_call_and_only_steered_lists_change(
    recommender: Recommender, states: list[SessionState]
) -> None:
    steered = SteeredRecommender(recommender)
    target = states[0].recent_tracks[-1]
    batch = [with_intent(states[0], "more_like_this", target), *states[1:4]]
    calls = sample("nowplaying_inference_seconds_count")
    rows = sample("nowplaying_inference_batch_rows_sum")
    lists = steered.recommend(batch, K)
    assert sample("nowplaying_inference_seconds_count") == calls + 1
    assert sample("nowplaying_inference_batch_rows_sum") > rows + 4 * recommender.candidates
    assert lists[1:] == recommender.recommend(states[1:4], K)
    first = lists[0]
    assert isinstance(first, SteeredList) and first.steering == "more_like_this"
    assert first != recommender.recommend(states[:1], K)[0]
    assert [r.rank for r in first] == list(range(1, K + 1))
    ids = [r.track_id for r in first]
    assert len(set(ids)) == K and not set(ids) & states[0].played
    # the list moved toward the steered track (its candidates may come from the intent's own
    # neighbours, source STEER_SOURCE, as well as from the generators)
    a = recommender.artifacts
    emb = a.embeddings[a.indices_of([target])[0]]

    def closeness(recs: list[Recommendation]) -> float:
        return float(np.mean(a.embeddings[a.indices_of([r.track_id for r in recs])] @ emb))

    assert closeness(first) > closeness(recommender.recommend(states[:1], K)[0]) + 0.1
    assert {r.source for r in first} <= {*SOURCES, STEER_SOURCE}


def test_each_intent_labels_its_list(recommender: Recommender, states: list[SessionState]) -> None:
    steered = SteeredRecommender(recommender)
    state = states[2]
    for kind, track in [
        ("more_like_this", state.recent_tracks[-1]),
        ("less_like_this", state.recent_tracks[-1]),
        ("discover", None),
        ("familiar", None),
    ]:
        (recs,) = steered.recommend_steered([with_intent(state, kind, track)], K)
        assert recs.steering == kind and len(recs) == K


class RiskOfFirst:
    """A skip-risk model that says the ranker's favourite of the first state will be skipped."""

    needs_rows = True

    def skip_risks(self, scored: Sequence[Scored]) -> list[F32 | None]:
        assert all(s.rows is not None for s in scored)
        first = scored[0]
        risk = np.zeros(len(first.scores), dtype=np.float32)
        risk[int(np.argmax(first.scores))] = 1.0
        return [risk, *([None] * (len(scored) - 1))]


def test_a_skip_risk_vector_steers_its_state_only(
    recommender: Recommender, states: list[SessionState]
) -> None:
    config = SteeringConfig(skip_risk=100.0)  # far above any standardised ranker score
    steered = SteeredRecommender(recommender, config, skip_risk=RiskOfFirst())
    plain = recommender.recommend(states[:3], K)
    (first, *rest) = steered.recommend_steered(states[:3], K)
    assert first.steering == "auto"
    assert plain[0][0].track_id not in {r.track_id for r in first}
    assert rest == plain[1:] and all(r.steering is None for r in rest)
