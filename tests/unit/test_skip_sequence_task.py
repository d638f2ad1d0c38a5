"""The offline sequence learner of the WSDM skip task: its arrays line up with the task's plays,
training is deterministic, the saved model reloads to the same probabilities, no test session
reaches its training data, and the evaluation scores it and the ensemble next to the others."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.session import Outcome
from models.datasets import synthetic_sessions
from models.labelled_sessions import LabelledPlay, Session, split_sessions
from models.skip.evaluation import TASK_MODEL, evaluate_skip
from models.skip.scorer import SkipRiskModel
from models.skip.sequence_eval import (
    ENSEMBLE,
    SEQUENCE_MODEL,
    add_sequence_task_model,
    offline_predictions,
    task_probabilities,
)
from models.skip.sequence_task import SequenceTaskConfig, SequenceTaskModel, fit_sequence_task
from models.skip.sequence_task_data import (
    MAX_HALF,
    TrackIndex,
    out_of_fold_arrays,
    task_arrays,
)
from models.skip.task_features import fit_task_stats, task_matrix
from models.skip.task_model import TaskConfig, TaskModel, embeddings_of, train_task_model
from models.skip.train import SkipConfig, train_skip_model

CODE: dict[str, Outcome] = {"e": "skip_early", "l": "skip_late", "c": "listened"}
TINY = SequenceTaskConfig(
    hidden=8, track_dim=4, code_dim=2, epochs=1, batch_size=32, folds=2, members=1
)


def session(name: str, outcomes: str, tracks: Sequence[str]) -> Session:
    plays = tuple(LabelledPlay(t, CODE[o]) for t, o in zip(tracks, outcomes, strict=True))
    return Session(name, f"u-{name}", plays)


def test_the_arrays_hold_the_first_half_with_outcomes_and_the_second_half_without() -> None:
    train = [session(f"s{i}", "eccelcce", [f"t{k}" for k in range(8)]) for i in range(4)]
    stats = fit_task_stats(train, embeddings_of(fit_artifacts(train)))
    a = session("a", "ceelccl", ["t0", "t1", "t2", "t3", "t4", "x", "t6"])  # half 3, x unknown
    short = session("b", "c", ["t0"])  # no task: left out
    arrays = task_arrays([a, short], stats, TrackIndex.of(train))
    assert arrays.session_ids == ("a",)
    assert arrays.enc_tracks.shape == arrays.dec_tracks.shape == (1, MAX_HALF)
    assert arrays.enc_mask[0].tolist() == [1, 1, 1] + [0] * (MAX_HALF - 3)
    assert arrays.dec_mask[0].tolist() == [1, 1, 1, 1] + [0] * (MAX_HALF - 4)
    assert arrays.enc_codes[0, :3].tolist() == [1, 3, 3]  # listened, early, early (+1)
    assert arrays.dec_tracks[0, 2] == 0  # the unknown track
    assert arrays.flat(arrays.labels).tolist() == [0, 0, 0, 0]
    # the same second-half tracks with other outcomes give the same inputs
    b = session("a", "ceeeeee", ["t0", "t1", "t2", "t3", "t4", "x", "t6"])
    other = task_arrays([b], stats, TrackIndex.of(train))
    np.testing.assert_array_equal(arrays.dec_feats, other.dec_feats)
    assert other.flat(other.labels).tolist() == [1, 1, 1, 1]
    # the decoder's last columns are the task model's rows, in the same order
    rows, _, _ = task_matrix([a], stats)
    np.testing.assert_allclose(arrays.flat(arrays.dec_feats)[:, -rows.shape[1] :], rows, atol=1e-5)


def test_no_test_session_reaches_the_training_arrays() -> None:
    train, _, test = split_sessions(synthetic_sessions(200, seed=5), seed=7)
    planted = [session(f"test-{i}", "eeeeeeee", [f"only-test-{i}"] * 8) for i in range(3)]
    index = TrackIndex.of(train)
    assert all(index.get(p.track_id) == 0 for s in planted for p in s.plays)
    assert set(index.ids) == {p.track_id for s in train for p in s.plays}
    rows = out_of_fold_arrays(train, index, 2, 7)
    assert set(rows.session_ids) == {s.session_id for s in train if len(s.plays) >= 2}
    assert not set(rows.session_ids) & {s.session_id for s in test}
    # a track heard in one training session only: its row's statistics come from the other
    # fold, which never saw it (the smoothed rate of an unknown track, no plays)
    lonely = session("lonely", "eeeeeeee", ["lonely-track"] * 8)
    rows = out_of_fold_arrays([*train, lonely], TrackIndex.of([*train, lonely]), 2, 7)
    k = rows.session_ids.index("lonely")
    assert rows.dec_feats[k, 0, 1] == 0.0  # log plays of the track in the other fold


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Session], list[Session]]:
    train, val, test = split_sessions(synthetic_sessions(300, seed=3), seed=7)
    folder = tmp_path_factory.mktemp("skip-sequence")
    artifacts = fit_artifacts(train)
    artifacts.save(folder)
    train_skip_model(train, val, artifacts, folder, SkipConfig(trees=20, folds=2))
    train_task_model(train, val, artifacts, folder, TaskConfig(trees=20, folds=2))
    add_sequence_task_model(train, val, artifacts, folder, TINY)
    return folder, train, test


def test_training_is_deterministic_and_reloads_to_the_same_probabilities(
    trained: tuple[Path, list[Session], list[Session]],
) -> None:
    folder, train, test = trained
    artifacts = TrackArtifacts.load(folder)
    stats = fit_task_stats(train, embeddings_of(artifacts))
    index = TrackIndex.of(train)
    rows = out_of_fold_arrays(train, index, TINY.folds, TINY.seed)
    arrays = task_arrays(test, stats, index)
    first = fit_sequence_task(rows, arrays, index.size, TINY)
    again = fit_sequence_task(rows, arrays, index.size, TINY)
    prob = first.probabilities(arrays)
    assert prob.shape == (int(arrays.dec_mask.sum()),)
    assert ((prob > 0) & (prob < 1)).all()
    np.testing.assert_array_equal(prob, again.probabilities(arrays))
    loaded = SequenceTaskModel.load(folder)
    assert loaded is not None
    saved = loaded.probabilities(arrays)
    assert saved.shape == prob.shape and np.isfinite(saved).all()
    copy = folder / "round-trip"
    copy.mkdir(exist_ok=True)
    first.save(copy, {})
    reloaded = SequenceTaskModel.load(copy)
    assert reloaded is not None
    np.testing.assert_allclose(reloaded.probabilities(arrays), prob, rtol=1e-6)


def test_the_evaluation_scores_the_sequence_model_and_the_ensemble(
    trained: tuple[Path, list[Session], list[Session]],
) -> None:
    folder, train, test = trained
    artifacts = TrackArtifacts.load(folder)
    scorer, task = SkipRiskModel.load(folder), TaskModel.load(folder)
    assert scorer is not None and task is not None
    offline = offline_predictions(folder, train, artifacts)
    assert offline is not None
    e = evaluate_skip(scorer, artifacts, test, lambda s: task.predict(s, train, artifacts), offline)
    assert {TASK_MODEL, SEQUENCE_MODEL, ENSEMBLE} <= set(e.methods)
    for name in (SEQUENCE_MODEL, ENSEMBLE):
        d = e.offline_minus_best[name]["maa"]
        assert d["low"] <= d["value"] <= d["high"]
    # the task columns of the arrays are the LightGBM model's rows: the same probabilities
    stats = fit_task_stats(train, embeddings_of(artifacts))
    arrays = task_arrays(test, stats, TrackIndex.of(train))
    np.testing.assert_allclose(
        task_probabilities(task, arrays), task.probabilities(test, train, artifacts), atol=1e-6
    )


def test_a_version_without_the_sequence_model_has_no_offline_predictions(tmp_path: Path) -> None:
    train = [session("s", "cccc", ["a", "b", "c", "d"])]
    assert offline_predictions(tmp_path, train, fit_artifacts(train)) is None
