"""Automatic steering: when it triggers, what it asks the skip model for (one call per batch),
and what it does to the lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.artifacts import F32, TrackArtifacts
from features.session import SessionState
from features.steering import SteeringConfig
from models.datasets import synthetic_sessions
from models.labelled_sessions import split_sessions
from models.ranking_queries import session_queries
from models.recommender import Recommender
from models.skip.auto import AutoPolicy, AutoSteering, auto_steering_for, going_wrong
from models.skip.scorer import SKIP_MODEL_FILE, SkipRiskModel
from models.steered import SteeredRecommender, steering_of
from tests.support.tiny_models import shared_two_versions

K = 10


class ConstantRisk:
    """A skip model that rates every row ``value`` and counts its calls."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.calls: list[int] = []

    def risk(self, rows: F32) -> F32:
        self.calls.append(len(rows))
        return np.full(len(rows), self.value, np.float32)


@pytest.fixture(scope="module")
def version() -> Path:
    folder, latest, _ = shared_two_versions()
    return folder / latest


@pytest.fixture(scope="module")
def recommender(version: Path) -> Recommender:
    return Recommender.load(version)


@pytest.fixture(scope="module")
def states() -> tuple[list[SessionState], list[SessionState]]:
    """(states after two or more skips in a row, states right after a listened track)."""
    test = split_sessions(synthetic_sessions(200, seed=7))[2]
    all_states = [q.state for s in test for q in session_queries(s) if q.state.position > 3]
    wrong = [s for s in all_states if s.consecutive_skips >= 2 and s.skipped_tracks][:6]
    fine = [s for s in all_states if s.consecutive_skips == 0][:6]
    assert len(wrong) == 6 and len(fine) == 6
    return wrong, fine


def test_two_skips_in_a_row_or_a_risky_top_trigger_it() -> None:
    policy = AutoPolicy(min_skips=2, risk_threshold=0.7)
    assert going_wrong(SessionState(consecutive_skips=2), None, policy)
    assert not going_wrong(SessionState(consecutive_skips=1), None, policy)
    assert not going_wrong(SessionState(consecutive_skips=1), 0.69, policy)
    assert going_wrong(SessionState(consecutive_skips=0), 0.7, policy)
    assert going_wrong(SessionState(consecutive_skips=5), None, AutoPolicy(min_skips=3))


def test_risks_for_the_sessions_going_wrong_only_in_one_call(
    recommender: Recommender, states: tuple[list[SessionState], list[SessionState]]
) -> None:
    wrong, fine = states
    batch = [*wrong[:3], *fine[:3]]
    scored = recommender.score(batch, keep_rows=True)
    model = ConstantRisk(0.1)
    risks = AutoSteering(model, AutoPolicy(k=K)).skip_risks(scored)
    for s, r in zip(scored[:3], risks[:3], strict=True):
        assert r is not None and len(r) == len(s.scores)
    assert risks[3:] == [None, None, None]
    # one call: every row of the three going wrong, the top 10 of the others
    assert model.calls == [sum(len(s.scores) for s in scored[:3]) + 3 * K]


def test_a_risky_top_ten_steers_a_session_without_skips_with_a_second_call(
    recommender: Recommender, states: tuple[list[SessionState], list[SessionState]]
) -> None:
    _, fine = states
    scored = recommender.score(fine[:2], keep_rows=True)
    model = ConstantRisk(0.9)
    risks = AutoSteering(model, AutoPolicy(risk_threshold=0.8)).skip_risks(scored)
    assert all(r is not None for r in risks)
    assert model.calls == [2 * K, sum(len(s.scores) for s in scored)]
    off = ConstantRisk(0.9)
    assert AutoSteering(off, AutoPolicy(risk_threshold=1.5)).skip_risks(scored) == [None, None]
    assert off.calls == []


def test_auto_lists_move_away_from_the_skipped_tracks_and_say_auto(
    recommender: Recommender,
    version: Path,
    states: tuple[list[SessionState], list[SessionState]],
) -> None:
    wrong, fine = states
    model = SkipRiskModel.load(version)
    assert model is not None
    config = SteeringConfig(away_from_skipped=5.0)
    auto = SteeredRecommender(
        recommender, config, AutoSteering(model, AutoPolicy(risk_threshold=2))
    )
    plain = SteeredRecommender(recommender, config)
    art = recommender.artifacts
    moved = 0
    for state, got, base in zip(
        wrong, auto.recommend_steered(wrong, K), plain.recommend_steered(wrong, K), strict=True
    ):
        assert got.steering == "auto" and steering_of(base) is None
        centroid = art.embedding_table64[art.indices_of(list(state.skipped_tracks))].sum(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0

        got_ids, base_ids = [r.track_id for r in got], [r.track_id for r in base]
        assert closeness(art, got_ids, centroid) <= closeness(art, base_ids, centroid) + 1e-9
        moved += got_ids != base_ids
    assert moved >= 1
    # sessions that are not going wrong keep the ranker's list, bit for bit
    assert auto.recommend(fine, K) == recommender.recommend(fine, K)


def closeness(art: TrackArtifacts, tracks: list[str], centroid: np.ndarray) -> float:
    """Mean cosine of the tracks to a unit vector."""
    return float((art.embedding_table64[art.indices_of(tracks)] @ centroid).mean())


def test_the_setting_and_the_version_decide_whether_lists_are_steered_automatically(
    version: Path, tmp_path: Path
) -> None:
    assert auto_steering_for(version, False) is None
    assert isinstance(auto_steering_for(version, True), AutoSteering)
    assert (version / SKIP_MODEL_FILE).is_file()
    assert auto_steering_for(tmp_path, True) is None  # a version without a skip model
