"""The WSDM evaluation model: its task features see only what the task gives (the first half's
outcomes, the second half's tracks), and it trains, reloads and is evaluated next to the served
skip model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from features.artifacts import TrackArtifacts, fit_artifacts
from features.session import Outcome
from models.datasets import synthetic_sessions
from models.labelled_sessions import LabelledPlay, Session, split_sessions
from models.skip.accuracy import session_accuracies
from models.skip.evaluation import TASK_MODEL, evaluate_skip
from models.skip.scorer import SkipRiskModel
from models.skip.task_features import (
    TASK_FEATURE_NAMES,
    fit_task_stats,
    task_matrix,
    task_rows,
)
from models.skip.task_model import TaskConfig, TaskModel, embeddings_of, train_task_model
from models.skip.train import SkipConfig, train_skip_model

CODE: dict[str, Outcome] = {"e": "skip_early", "l": "skip_late", "c": "listened"}


def session(name: str, outcomes: str, tracks: str) -> Session:
    plays = tuple(LabelledPlay(f"t{t}", CODE[o]) for t, o in zip(tracks, outcomes, strict=True))
    return Session(name, f"u-{name}", plays)


def col(rows: np.ndarray, name: str) -> np.ndarray:
    return rows[:, TASK_FEATURE_NAMES.index(name)]


def test_task_rows_never_see_the_second_halfs_outcomes() -> None:
    train = [session(f"s{i}", "eccelcce", "01234567") for i in range(5)]
    stats = fit_task_stats(train, {})
    a = session("a", "ceelcc", "012345")
    b = session("a", "ceeeel", "012345")  # the same first half, other second-half outcomes
    rows_a, labels_a = task_rows(a, stats)
    rows_b, labels_b = task_rows(b, stats)
    np.testing.assert_array_equal(rows_a, rows_b)
    assert labels_a.tolist() == [False, False, False]
    assert labels_b.tolist() == [True, True, False]


def test_task_rows_describe_the_first_half_and_the_position() -> None:
    stats = fit_task_stats([session("s", "cccc", "0123")], {})
    rows, _ = task_rows(session("a", "clee" + "ccc", "0120" + "345"), stats)  # half: 3
    assert rows.shape == (4, len(TASK_FEATURE_NAMES))
    assert col(rows, "offset").tolist() == [0, 1, 2, 3]
    assert col(rows, "length").tolist() == [7] * 4
    assert col(rows, "last_1_code").tolist() == [2] * 4  # the third play, skipped early
    assert col(rows, "last_2_code").tolist() == [1] * 4
    assert col(rows, "last_5_code").tolist() == [3] * 4  # none
    assert col(rows, "trailing_run").tolist() == [1] * 4
    assert col(rows, "half_early_rate")[0] == pytest.approx(1 / 3)
    # track t0 (the fourth play) was listened in the first half: code 0; the others none
    assert col(rows, "played_before_code").tolist() == [0, 3, 3, 3]
    assert col(rows, "prev_is_known").tolist() == [1, 0, 0, 0]


def test_sessions_too_short_for_the_task_give_no_rows() -> None:
    stats = fit_task_stats([session("s", "cc", "01")], {})
    rows, labels, numbers = task_matrix([session("a", "c", "0")], stats)
    assert rows.shape == (0, len(TASK_FEATURE_NAMES)) and len(labels) == len(numbers) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Session], list[Session]]:
    train, val, test = split_sessions(synthetic_sessions(400, seed=3), seed=7)
    folder = tmp_path_factory.mktemp("skip-task")
    artifacts = fit_artifacts(train)
    artifacts.save(folder)
    train_skip_model(train, val, artifacts, folder, SkipConfig(trees=30, folds=2))
    train_task_model(train, val, artifacts, folder, TaskConfig(trees=40, folds=2))
    return folder, train, test


def test_the_task_model_reloads_and_is_evaluated_next_to_the_served_model(
    trained: tuple[Path, list[Session], list[Session]],
) -> None:
    folder, train, test = trained
    model = TaskModel.load(folder)
    scorer = SkipRiskModel.load(folder)
    assert model is not None and scorer is not None
    artifacts = TrackArtifacts.load(folder)
    predicted = model.predict(test, train, artifacts)
    _, labels, numbers = task_matrix(test, fit_task_stats(train, embeddings_of(artifacts)))
    assert predicted.shape == labels.shape

    def task_predict(sessions: Sequence[Session]) -> NDArray[np.bool_]:
        return model.predict(sessions, train, artifacts)

    e = evaluate_skip(scorer, artifacts, test, task_predict)
    assert TASK_MODEL in e.methods
    d = e.task_model_minus_best["maa"]
    assert d["low"] <= d["value"] <= d["high"]
    # the evaluation lines the predictions up with the same second-half plays
    direct = session_accuracies(numbers, predicted, labels)[0].mean()
    assert e.methods[TASK_MODEL]["maa"]["value"] == pytest.approx(direct)
    assert e.predictions == len(labels)
