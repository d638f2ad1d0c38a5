"""The skip-risk model: its accuracy metric by hand, the baselines, its examples' states, and
the exported graph against LightGBM."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.rows import FEATURE_NAMES, FEATURE_VERSION, SEQUENCE_FEATURES
from features.session import Outcome
from models.datasets import synthetic_sessions
from models.labelled_sessions import LabelledPlay, Session, split_sessions
from models.skip.accuracy import average_accuracy, first_track_correct, session_accuracies
from models.skip.evaluation import auc, baseline_predictions, evaluate_skip
from models.skip.examples import example_rows, session_examples
from models.skip.scorer import SKIP_METADATA_FILE, SKIP_MODEL_FILE, SkipRiskModel
from models.skip.train import SkipConfig, export_skip_onnx, train_skip_model

B = np.array


def session(name: str, outcomes: str, tracks: list[str] | None = None) -> Session:
    """``outcomes``: one letter per play, e (early skip), l (late skip), c (listened)."""
    code: dict[str, Outcome] = {"e": "skip_early", "l": "skip_late", "c": "listened"}
    ids = tracks or [f"{name}-t{i}" for i in range(len(outcomes))]
    plays = tuple(LabelledPlay(t, code[o]) for t, o in zip(ids, outcomes, strict=True))
    return Session(name, f"u-{name}", plays)


def test_average_accuracy_matches_the_challenge_definition_by_hand() -> None:
    # correct: 1 0 1 0 -> running accuracy 1, 1/2, 2/3, 1/2; AA = (1 + 2/3) / 4
    assert average_accuracy(B([1, 0, 1, 1], bool), B([1, 1, 1, 0], bool)) == pytest.approx(5 / 12)
    # a wrong first prediction weighs on every later one: AA = (0 + 1/2) / 2
    assert average_accuracy(B([0, 1], bool), B([1, 1], bool)) == pytest.approx(0.25)
    # the same errors late instead of early cost less: (1 + 1 + 2/3 + 0)/4 vs 5/12
    late = average_accuracy(B([1, 1, 0, 0], bool), B([1, 1, 1, 1], bool))
    assert late == pytest.approx((1 + 1 + 0) / 4)
    assert average_accuracy(B([1, 0, 1], bool), B([1, 0, 1], bool)) == 1.0
    assert average_accuracy(B([1, 0], bool), B([0, 1], bool)) == 0.0
    assert first_track_correct(B([0, 1], bool), B([0, 0], bool)) == 1.0
    with pytest.raises(ValueError):
        average_accuracy(B([], bool), B([], bool))


def test_session_accuracies_group_consecutive_predictions_by_session() -> None:
    sessions = B([0, 0, 0, 0, 1, 1], np.int64)
    predicted = B([1, 0, 1, 1, 0, 1], bool)
    actual = B([1, 1, 1, 0, 1, 1], bool)
    aa, first = session_accuracies(sessions, predicted, actual)
    assert aa == pytest.approx([5 / 12, 0.25])
    assert first.tolist() == [1.0, 0.0]


def test_examples_fold_known_outcomes_then_only_the_starts_before_the_target() -> None:
    s = session("a", "eccelc")  # 6 plays, first half: 3
    examples = {(e.target, e.known): e for e in session_examples(s)}
    online = examples[(4, 3)]  # right after the track_start of play 3 (0-based)
    assert (online.state.position, online.state.plays, online.state.current_track) == (
        4,
        3,
        "a-t3",
    )
    assert online.skipped is False and online.track_id == "a-t4"
    half = examples[(5, 3)]  # first half known, plays 3 and 4 started, outcomes unknown
    assert (half.state.position, half.state.plays, half.state.skips) == (5, 3, 1)
    assert half.is_half and not examples[(2, 1)].is_half
    first = examples[(3, 3)]  # the second half's first track: every earlier outcome known
    assert (first.state.position, first.state.plays) == (3, 3) and first.is_half
    # online targets 1..5 and half targets 3..5, (4, 3) counted once
    assert len(examples) == 5 + 3 - 1


def test_baselines_predict_from_the_first_half_and_the_training_skip_rates() -> None:
    train = [session(f"tr{i}", "eccc", ["x", "y", "w", "v"]) for i in range(30)]
    artifacts = fit_artifacts(train)
    a = session("a", "ceeccc", ["p", "q", "r", "x", "y", "z"])  # first half c e e
    b = session("b", "eccecc", ["p", "q", "r", "y", "x", "z"])  # first half e c c
    half = [e for s in (a, b) for e in session_examples(s) if e.is_half]
    got = baseline_predictions([a, b], half, artifacts)
    assert got["last_outcome"].tolist() == [True] * 3 + [False] * 3
    assert got["session_rate"].tolist() == [True] * 3 + [False] * 3
    # x is always skipped early in training, y never; z is unknown: the global rate, 1/4
    x_rate = float(artifacts.early_skip_rate[artifacts.index["x"]])
    assert x_rate > 0.5 > float(artifacts.early_skip_rate[artifacts.index["y"]])
    assert got["track_rate"].tolist() == [True, False, False, False, True, False]


def test_auc_by_ranks() -> None:
    assert auc(B([0.1, 0.4, 0.35, 0.8]), B([0, 0, 1, 1], bool)) == pytest.approx(0.75)
    assert auc(B([0.5, 0.5]), B([0, 1], bool)) == pytest.approx(0.5)


def adjacent_value_classifier() -> tuple[lgb.Booster, np.ndarray]:
    """A binary model whose splits fall between float32 values one step apart."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 10.0, 64).astype(np.float32)
    values = np.concatenate([base, np.nextafter(base, np.float32(np.inf))])
    is_above = np.repeat([False, True], len(base))
    order = rng.permutation(np.tile(np.arange(len(values)), 20))
    x = np.zeros((len(order), len(FEATURE_NAMES)), np.float32)
    x[:, 0] = values[order]
    x[:, 1] = rng.uniform(0, 1, len(order))
    params = {"objective": "binary", "num_leaves": 15, "min_child_samples": 5, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, is_above[order].astype(int)), 20)
    return booster, x


def test_exported_skip_graph_gives_lightgbms_probabilities_one_float32_step_apart(
    tmp_path: Path,
) -> None:
    booster, x = adjacent_value_classifier()
    export_skip_onnx(booster, tmp_path / SKIP_MODEL_FILE)
    meta = {"feature_version": FEATURE_VERSION, "feature_names": list(FEATURE_NAMES)}
    (tmp_path / SKIP_METADATA_FILE).write_text(json.dumps(meta))
    scorer = SkipRiskModel.load(tmp_path)
    assert scorer is not None
    diff = np.abs(scorer.risk(x) - booster.predict(x))
    assert diff.max() <= 1e-5
    # the two float32 neighbours do get different probabilities
    assert len(np.unique(np.round(scorer.risk(x), 3))) > 1


@pytest.fixture(scope="module")
def trained_skip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Session]]:
    sessions = synthetic_sessions(300, seed=3)
    train, val, test = split_sessions(sessions)
    folder = tmp_path_factory.mktemp("skip-version")
    artifacts = fit_artifacts(train)
    artifacts.save(folder)
    config = SkipConfig(trees=40, folds=2, early_stopping_rounds=10)
    train_skip_model(train, val, artifacts, folder, config)
    return folder, test


def test_trained_skip_model_onnx_matches_lightgbm_on_real_feature_rows(
    trained_skip: tuple[Path, list[Session]],
) -> None:
    folder, test = trained_skip
    scorer = SkipRiskModel.load(folder)
    assert scorer is not None
    assert 0.3 <= scorer.threshold <= 0.7
    examples = [e for s in test for e in session_examples(s)]
    rows = example_rows(examples, TrackArtifacts.load(folder))
    booster = lgb.Booster(model_file=str(folder / "skip_lightgbm.txt"))
    diff = np.abs(scorer.risk(rows) - booster.predict(rows))
    assert diff.max() <= 1e-5
    assert scorer.metadata["parity"]["max_abs_diff"] <= 1e-5


def test_skip_model_does_not_use_the_sequence_model_columns(
    trained_skip: tuple[Path, list[Session]],
) -> None:
    """The skip model's training rows have no sequence model (zeros there, so no split uses
    them); the stream's rows do: its rating of them must not depend on those columns."""
    folder, test = trained_skip
    scorer = SkipRiskModel.load(folder)
    assert scorer is not None
    examples = [e for s in test for e in session_examples(s)]
    rows = example_rows(examples, TrackArtifacts.load(folder))
    columns = [FEATURE_NAMES.index(n) for n in SEQUENCE_FEATURES]
    assert not rows[:, columns].any()
    served = rows.copy()
    served[:, columns] = np.random.default_rng(0).normal(size=(len(rows), len(columns)))
    np.testing.assert_array_equal(scorer.risk(served), scorer.risk(rows))


def test_skip_evaluation_reports_every_method_with_intervals(
    trained_skip: tuple[Path, list[Session]],
) -> None:
    folder, test = trained_skip
    scorer = SkipRiskModel.load(folder)
    assert scorer is not None
    e = evaluate_skip(scorer, TrackArtifacts.load(folder), test)
    assert e.sessions == len(test)
    assert set(e.methods) == {"model", "last_outcome", "session_rate", "track_rate"}
    for figures in e.methods.values():
        for f in figures.values():
            assert 0.0 <= f["low"] <= f["value"] <= f["high"] <= 1.0
    assert e.best_baseline in ("last_outcome", "session_rate", "track_rate")
    # the synthetic skips depend on taste, which the rows carry: better than chance
    assert e.online_auc > 0.5
