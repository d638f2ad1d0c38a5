"""Training end to end on a small synthetic sample: registry, metadata, ONNX parity, no leakage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.rows import FEATURE_NAMES, FEATURE_VERSION
from models.datasets import synthetic_sessions
from models.evaluate import CHART_FILE, METRICS_FILE, REPORT_FILE
from models.export import onnx_scores, onnx_session
from models.labelled_sessions import LabelledPlay, Session, split_sessions
from models.ranking_queries import LABEL, RankingData, session_queries, training_data
from models.recommender import SEQUENCE_FILE
from models.registry import LATEST, LIGHTGBM_FILE, MODEL_FILE, resolve_version_dir
from models.train import TrainConfig, fit_ranker, train_model
from models.train_sequence import SEQUENCE_HALVES, half_of, sessions_for
from nowplaying.cli import main

TINY = TrainConfig(trees=30, folds=2, negatives=20, early_stopping_rounds=10, sequence_epochs=1)
LEAK_FROM, LEAK_TO = "leak-source-track", "leak-target-track"
#: registry, version folder, the sessions trained on, a transition only test sessions hold
Trained = tuple[Path, Path, list[Session], tuple[str, str]]


def with_test_only_transitions(sessions: list[Session]) -> tuple[list[Session], tuple[str, str]]:
    """Put a brand-new pair of tracks, and a new transition between two training tracks, into
    test-split sessions only."""
    train, _, test = split_sessions(sessions, seed=TINY.seed)
    train_pairs = {
        (a.track_id, b.track_id) for s in train for a, b in zip(s.plays, s.plays[1:], strict=False)
    }
    train_tracks = sorted({p.track_id for s in train for p in s.plays})
    known_pair = next(
        (a, b) for a in train_tracks for b in reversed(train_tracks) if (a, b) not in train_pairs
    )
    changed = {}
    for s in test[:5]:
        extra = (
            LabelledPlay(LEAK_FROM, "listened"),
            LabelledPlay(LEAK_TO, "listened"),
            LabelledPlay(known_pair[0], "listened"),
            LabelledPlay(known_pair[1], "listened"),
        )
        changed[s.session_id] = replace(s, plays=s.plays + extra)
    return [changed.get(s.session_id, s) for s in sessions], known_pair


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    registry = tmp_path_factory.mktemp("registry")
    sessions, known_pair = with_test_only_transitions(synthetic_sessions(300, seed=7))
    version_dir = train_model(sessions, registry, config=TINY, data_info={"kind": "synthetic"})
    return registry, version_dir, sessions, known_pair


def test_version_folder_holds_the_model_the_artifacts_and_the_report(trained: Trained) -> None:
    registry, version_dir, _, _ = trained
    assert resolve_version_dir(registry) == version_dir
    assert (registry / LATEST).read_text().strip() == version_dir.name
    names = {p.name for p in version_dir.iterdir()}
    expected = {MODEL_FILE, LIGHTGBM_FILE, "metadata.json", "artifacts.npz", "artifacts.json"}
    assert expected | {REPORT_FILE, METRICS_FILE, CHART_FILE} <= names
    assert (version_dir / CHART_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in registry.iterdir() if p.name.startswith(".building")]


def test_metadata_records_features_data_parameters_and_metrics(trained: Trained) -> None:
    _, version_dir, sessions, _ = trained
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert meta["version"] == version_dir.name
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert meta["feature_version"] == FEATURE_VERSION
    assert meta["created_at"].endswith("Z")
    assert meta["params"]["trees"] == TINY.trees
    assert meta["data"]["sessions"] == {"train": 240, "validation": 30, "test": 30}
    assert len(meta["data"]["train_fingerprint"]) == 64
    assert meta["onnx"]["target_opset"] == 15
    metrics = meta["metrics"]
    assert set(metrics["ndcg_at_10"]) == {"popularity", "colisten", "ranker"}
    assert 0.0 < metrics["candidate_recall"] <= 1.0
    assert metrics["parity_max_abs_diff"] <= 1e-4
    assert metrics["queries"] == sum(len(s.plays) - 1 for s in split_sessions(sessions)[2])


def test_onnx_scores_match_lightgbm_on_every_test_row(trained: Trained) -> None:
    _, version_dir, sessions, _ = trained
    artifacts = TrackArtifacts.load(version_dir)
    test = split_sessions(sessions, seed=TINY.seed)[2]
    queries = [q for s in test for q in session_queries(s)]
    data = training_data(queries, artifacts, negatives=None, candidates=200, seed=0)
    assert len(data.rows) > 1000
    booster = lgb.Booster(model_file=str(version_dir / LIGHTGBM_FILE))
    expected = booster.predict(data.rows)
    actual = onnx_scores(onnx_session(version_dir / MODEL_FILE), data.rows)
    assert np.max(np.abs(actual - expected)) <= 1e-4
    assert np.std(actual) > 0  # a real model, not a constant


def test_artifacts_learn_nothing_from_test_sessions(trained: Trained) -> None:
    _, version_dir, sessions, known_pair = trained
    artifacts = TrackArtifacts.load(version_dir)
    assert LEAK_FROM not in artifacts.index
    assert LEAK_TO not in artifacts.index
    assert known_pair[0] in artifacts.index
    assert known_pair[1] in artifacts.index
    assert not artifacts.has_transition(*known_pair)
    train = split_sessions(sessions, seed=TINY.seed)[0]
    assert artifacts.params["sessions"] == len(train)
    assert artifacts.plays.sum() == sum(len(s.plays) for s in train)


def test_the_ranker_beats_popularity_on_synthetic_sessions(trained: Trained) -> None:
    _, version_dir, _, _ = trained
    ndcg = json.loads((version_dir / "metadata.json").read_text())["metrics"]["ndcg_at_10"]
    assert ndcg["ranker"] > ndcg["popularity"] + 0.1


def test_cli_train_synthetic_then_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both commands evaluate what the worker would serve: NP_CANDIDATES candidates per state
    (not the 200 of the training rows), so they report the same figures."""
    monkeypatch.setenv("NP_CANDIDATES", "37")
    args = ["--sessions", "120", "--trees", "10", "--folds", "2", "--no-progress"]
    assert main(["train", "--synthetic", *args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out
    assert "ranker" in out
    version_dir = resolve_version_dir(tmp_path)
    assert "Candidate recall@37" in (version_dir / REPORT_FILE).read_text()
    trained = json.loads((version_dir / "metrics.json").read_text())
    (version_dir / REPORT_FILE).unlink()
    assert main(["evaluate", "--model", str(version_dir), "--no-progress"]) == 0
    report = (version_dir / REPORT_FILE).read_text()
    assert "| ranker |" in report
    assert "Candidate recall@37" in report
    evaluated = json.loads((version_dir / "metrics.json").read_text())
    assert evaluated["evaluation"]["candidates"] == 37
    served = [m["evaluation"]["served"]["methods"]["served"] for m in (trained, evaluated)]
    assert served[0]["figures"] == served[1]["figures"]


def test_cli_train_without_data_explains_the_synthetic_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NP_DATA_DIR", str(tmp_path / "no-data-here"))
    assert main(["train", "--out", str(tmp_path / "registry"), "--no-progress"]) == 2
    assert "--synthetic" in capsys.readouterr().err
    assert not (tmp_path / "registry").exists()


def test_early_stopping_can_be_turned_off_to_keep_every_tree() -> None:
    """``--early-stopping-rounds 0``: the model has exactly the asked-for trees (the benchmark's
    200-tree model); with early stopping, noise labels stop it well before."""

    def noise(seed: int) -> RankingData:
        rng = np.random.default_rng(seed)
        rows = rng.random((400, len(FEATURE_NAMES)), dtype=np.float32)
        labels = (rng.random(400) < 0.1).astype(np.int32)
        keys = [("s", i) for i in range(40)]
        return RankingData(
            rows, labels, np.full(40, 10, np.int32), np.arange(400, dtype=np.int32), keys
        )

    train, val = noise(3), noise(4)
    kept = fit_ranker(train, val, replace(TINY, trees=25, early_stopping_rounds=0), False)
    stopped = fit_ranker(train, val, replace(TINY, trees=200, early_stopping_rounds=3), False)
    assert kept.num_trees() == 25
    assert stopped.num_trees() < 200


def test_the_sequence_model_is_trained_on_the_training_split_only_and_out_of_fold(
    trained: Trained,
) -> None:
    _, version_dir, sessions, _ = trained
    train, _, test = split_sessions(sessions, seed=TINY.seed)
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert (version_dir / SEQUENCE_FILE).exists()
    sequence = meta["sequence"]
    assert sequence["serving"]["sessions"] == len(train)  # never a validation or test session
    halves = [h["sessions"] for h in sequence["halves"]]
    assert sum(halves) == len(train) and all(0 < h < len(train) for h in halves)
    # The half model that scores a training session's queries never saw that session.
    seed = sequence["half_seed"]
    for k in range(SEQUENCE_HALVES):
        seen = {s.session_id for s in sessions_for(train, k, seed)}
        scored = {s.session_id for s in train if half_of(s.session_id, seed) == k}
        assert scored and not seen & scored
    planted = {s.session_id for s in test if any(p.track_id == LEAK_FROM for p in s.plays)}
    assert planted and not planted & {s.session_id for s in sessions_for(train, -1, seed)}
    served = meta["metrics"]["served"]["methods"]
    assert "sequence" in served  # the sequence model alone, next to the served lists


def test_every_actual_next_track_is_a_graded_positive() -> None:
    train = split_sessions(synthetic_sessions(200), seed=TINY.seed)[0]
    artifacts = fit_artifacts(train, seed=0)
    queries = [q for s in train[:60] for q in session_queries(s)]
    data = training_data(queries, artifacts, negatives=5, candidates=50, seed=0)
    old = training_data(queries, artifacts, negatives=5, candidates=50, seed=0, every_next=False)
    by_key = {(q.session_id, q.position): q for q in queries}
    start = np.concatenate([[0], np.cumsum(data.groups)[:-1]])
    outcomes = set()
    for key, at, size in zip(data.keys, start, data.groups, strict=True):
        labels = data.labels[at : at + size]
        query = by_key[key]
        outcomes.add(query.next_outcome)
        assert sorted(labels.tolist())[-2:] == [0, LABEL[query.next_outcome]]
        assert data.tracks[at + int(np.argmax(labels))] == artifacts.index[query.next_track]
    assert "skip_early" in outcomes  # early skips are positives now ...
    assert old.n_queries < data.n_queries  # ... where the graded gain left them out
    assert set(old.labels.tolist()) <= {0, 1, 2}
