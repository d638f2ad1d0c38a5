"""The recommender the stream worker calls: loaded from a real (tiny) model version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from features.artifacts import TrackArtifacts
from features.candidates import SOURCES
from features.rows import N_FEATURES
from features.session import SessionEvent, SessionState, fold_events
from models.datasets import synthetic_sessions
from models.labelled_sessions import Session, split_sessions
from models.ranking_queries import session_queries
from models.recommender import ModelMismatchError, Recommender
from models.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def sessions() -> list[Session]:
    return synthetic_sessions(250, seed=17)


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory: pytest.TempPathFactory, sessions: list[Session]) -> Path:
    config = TrainConfig(
        trees=20, folds=2, negatives=15, early_stopping_rounds=10, sequence_epochs=1
    )
    return train_model(sessions, tmp_path_factory.mktemp("registry"), config=config, evaluate=False)


@pytest.fixture(scope="module")
def recommender(version_dir: Path) -> Recommender:
    return Recommender.load(version_dir)


@pytest.fixture(scope="module")
def states(sessions: list[Session]) -> list[SessionState]:
    test = split_sessions(sessions)[2]
    return [q.state for s in test[:6] for q in session_queries(s)][:40]


def test_lists_are_sorted_ranked_distinct_and_skip_played_tracks(
    recommender: Recommender, states: list[SessionState]
) -> None:
    lists = recommender.recommend(states, 10)
    assert len(lists) == len(states)
    for state, recs in zip(states, lists, strict=True):
        assert [r.rank for r in recs] == list(range(1, 11))
        scores = [r.score for r in recs]
        assert scores == sorted(scores, reverse=True)
        ids = [r.track_id for r in recs]
        assert len(set(ids)) == 10
        assert not set(ids) & state.played
        assert {r.source for r in recs} <= set(SOURCES)


def test_recomputing_from_the_same_state_gives_the_identical_list(
    recommender: Recommender, states: list[SessionState]
) -> None:
    batch = recommender.recommend(states, 10)
    alone = [recommender.recommend([s], 10)[0] for s in states[:8]]
    assert batch[:8] == alone
    assert recommender.recommend(states, 10) == batch


def test_a_batch_is_scored_in_one_onnxruntime_call(
    recommender: Recommender, states: list[SessionState]
) -> None:
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    calls = sample("nowplaying_inference_seconds_count")
    rows = sample("nowplaying_inference_batch_rows_sum")
    candidates = sample("nowplaying_candidates_per_request_count")
    recommender.recommend(states[:16], 10)
    assert sample("nowplaying_inference_seconds_count") == calls + 1
    assert sample("nowplaying_inference_batch_rows_sum") == rows + 16 * 200
    assert sample("nowplaying_candidates_per_request_count") == candidates + 16


def test_new_sessions_and_unknown_tracks_get_popular_lists(recommender: Recommender) -> None:
    unknown = fold_events([SessionEvent("start", "never-heard-of-it", 1, None)])
    for recs in recommender.recommend([SessionState(), unknown], 5):
        assert len(recs) == 5
        assert {r.source for r in recs} == {"popular"}
    assert recommender.recommend([], 5) == []


def test_score_ties_are_broken_by_track_id(version_dir: Path) -> None:
    class ConstantSession:
        """Scores every row 0.5 (onnxruntime's interface, for a pure tie-break check)."""

        def get_inputs(self) -> list[Any]:
            return [SimpleNamespace(name="features", shape=[None, N_FEATURES])]

        def run(self, _outputs: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            rows = next(iter(feeds.values()))
            return [np.full((len(rows), 1), 0.5, np.float32)]

    meta = json.loads((version_dir / "metadata.json").read_text())
    tie = Recommender(
        ConstantSession(),
        TrackArtifacts.load(version_dir),
        meta,
    )
    busy = fold_events([SessionEvent("start", tie.artifacts.track_ids[3], 1, None)])
    recs = tie.recommend([busy], 20)[0]
    ids = [r.track_id for r in recs]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("field", "value"),
    [("feature_version", "0"), ("feature_names", ["session_position"])],
)
def test_a_model_built_for_other_features_is_refused(
    version_dir: Path, tmp_path: Path, field: str, value: object
) -> None:
    copy = tmp_path / version_dir.name
    shutil.copytree(version_dir, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta[field] = value
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError, match="feature"):
        Recommender.load(copy)


def test_model_version_and_feature_version_come_from_the_metadata(
    recommender: Recommender, version_dir: Path
) -> None:
    assert recommender.model_version == version_dir.name
    assert recommender.feature_version == "2"
