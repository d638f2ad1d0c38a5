"""The sequence model: ONNX equals JAX, one pass trains every position, no leakage, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.sequence import SEQUENCE_LENGTH, sequence_inputs, session_sequences
from features.session import SessionEvent, SessionState, fold_events
from models.datasets import synthetic_sessions
from models.labelled_sessions import LabelledPlay, Session, split_sessions
from models.ranking_queries import session_queries
from models.sequence import SEQUENCE_MODEL_FILE, SequenceModelError, SequenceScorer
from models.sequence.train import (
    SequenceConfig,
    TrainedSequenceModel,
    forget_fitted_models,
    train_out_of_fold,
    train_sequence_model,
)

TINY = SequenceConfig(embedding_dim=8, hidden=16, epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def data() -> tuple[list[Session], TrackArtifacts]:
    sessions = synthetic_sessions(80, seed=5)
    return sessions, fit_artifacts(sessions)


@pytest.fixture(scope="module")
def trained(
    data: tuple[list[Session], TrackArtifacts], tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainedSequenceModel, SequenceScorer]:
    sessions, artifacts = data
    model = train_sequence_model(sessions, artifacts, seed=3, config=TINY)
    path = tmp_path_factory.mktemp("sequence") / SEQUENCE_MODEL_FILE
    model.save_onnx(path)
    return model, SequenceScorer.load(path, artifacts=artifacts)


def _long_state(artifacts: TrackArtifacts, plays: int) -> SessionState:
    events = []
    for i in range(plays):
        track = artifacts.track_ids[(7 * i) % artifacts.n_tracks] if i % 5 else f"unknown-{i}"
        events.append(SessionEvent("start", track, 2 * i, None))
        if i < plays - 1:
            outcome = ("skip_early", "skip_late", "listened")[i % 3]
            events.append(SessionEvent("end", track, 2 * i + 1, outcome))  # type: ignore[arg-type]
    return fold_events(events)


def test_onnx_scores_equal_the_jax_forward(
    data: tuple[list[Session], TrackArtifacts],
    trained: tuple[TrainedSequenceModel, SequenceScorer],
) -> None:
    sessions, artifacts = data
    model, scorer = trained
    states = [q.state for s in sessions[:15] for q in session_queries(s)]
    states += [
        SessionState(),  # no play yet: one padding token
        _long_state(artifacts, 1),  # length 1, an unknown track
        _long_state(artifacts, SEQUENCE_LENGTH),  # exactly L
        _long_state(artifacts, SEQUENCE_LENGTH + 9),  # longer: the last L plays
    ]
    tracks, outcomes, lengths = sequence_inputs(states, artifacts)
    assert {0, 1, SEQUENCE_LENGTH} <= set(lengths.tolist())
    assert (tracks[lengths > 0] == 0).any()  # padding and unknown tracks both occur
    onnx_scores = scorer.scores(states, artifacts)
    jax_scores = model.scores(tracks, outcomes, lengths)
    assert onnx_scores.shape == (len(states), artifacts.n_tracks)
    assert onnx_scores.dtype == np.float32
    assert np.abs(onnx_scores - jax_scores).max() < 1e-4
    assert onnx_scores.std(axis=1).min() > 0  # a real, input-dependent output
    assert not np.allclose(onnx_scores[0], onnx_scores[-1])


def test_one_pass_over_a_training_row_gives_every_position_s_served_scores(
    data: tuple[list[Session], TrackArtifacts],
    trained: tuple[TrainedSequenceModel, SequenceScorer],
) -> None:
    sessions, artifacts = data
    model, _ = trained
    short = [s for s in sessions if len(s.plays) <= SEQUENCE_LENGTH][:6]
    rows = session_sequences(short, artifacts)
    per_step = model.step_scores(rows.tracks, rows.outcomes)
    for r, session in enumerate(short):
        queries = list(session_queries(session))
        served = model.scores(*sequence_inputs([q.state for q in queries], artifacts))
        for q, scores in zip(queries, served, strict=True):
            assert np.abs(per_step[r, q.position - 1] - scores).max() < 1e-4


def test_an_empty_batch_scores_to_no_rows(
    data: tuple[list[Session], TrackArtifacts],
    trained: tuple[TrainedSequenceModel, SequenceScorer],
) -> None:
    _, artifacts = data
    model, scorer = trained
    assert scorer.scores([], artifacts).shape == (0, artifacts.n_tracks)
    assert scorer.n_tracks == model.n_tracks == artifacts.n_tracks


def test_a_model_of_other_artifacts_is_refused_at_load(
    trained: tuple[TrainedSequenceModel, SequenceScorer], tmp_path: Path
) -> None:
    model, _ = trained
    path = tmp_path / SEQUENCE_MODEL_FILE
    model.save_onnx(path)
    other = fit_artifacts(synthetic_sessions(10, seed=99)[:2])
    assert other.n_tracks != model.n_tracks
    with pytest.raises(SequenceModelError, match="other artifacts"):
        SequenceScorer.load(path, artifacts=other)
    path.write_bytes(b"not onnx")
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime's own error type)
        SequenceScorer.load(path)


def test_training_is_deterministic_for_a_seed(
    data: tuple[list[Session], TrackArtifacts],
    trained: tuple[TrainedSequenceModel, SequenceScorer],
    tmp_path: Path,
) -> None:
    sessions, artifacts = data
    model, scorer = trained
    states = [q.state for s in sessions[:5] for q in session_queries(s)]
    assert train_sequence_model(sessions, artifacts, seed=3, config=TINY) is model  # kept
    forget_fitted_models()
    again = train_sequence_model(sessions, artifacts, seed=3, config=TINY)
    assert again is not model
    again.save_onnx(tmp_path / "again.onnx")
    assert np.array_equal(
        SequenceScorer.load(tmp_path / "again.onnx").scores(states, artifacts),
        scorer.scores(states, artifacts),
    )
    other = train_sequence_model(sessions, artifacts, seed=4, config=TINY)
    assert not np.allclose(other.weights.output, model.weights.output)


def _planted(sessions: list[Session], a: str, b: str) -> list[Session]:
    """``a`` then ``b`` appended to the sessions of the test split only."""
    _, _, test = split_sessions(sessions)
    ids = {s.session_id for s in test}
    out = []
    for s in sessions:
        if s.session_id in ids:
            plays = (*s.plays, LabelledPlay(a, "listened"), LabelledPlay(b, "listened"))
            out.append(Session(s.session_id, s.user_id, plays))
        else:
            out.append(s)
    return out


def test_a_transition_planted_in_test_sessions_never_reaches_the_training_examples() -> None:
    base = synthetic_sessions(120, seed=11)
    train0, _, _ = split_sessions(base)
    counts: dict[tuple[str, str], int] = {}
    for s in train0:
        for x, y in zip(s.plays, s.plays[1:], strict=False):
            counts[x.track_id, y.track_id] = counts.get((x.track_id, y.track_id), 0) + 1
    known = sorted({p.track_id for s in train0 for p in s.plays})
    a, b = next((x, y) for x in known for y in known if x != y and (x, y) not in counts)
    sessions = _planted(base, a, b)
    train, _, test = split_sessions(sessions)
    assert (
        sum(
            1
            for s in test
            for x, y in zip(s.plays, s.plays[1:], strict=False)
            if (x.track_id, y.track_id) == (a, b)
        )
        >= 10
    )
    artifacts = fit_artifacts(train)
    rows = session_sequences(train, artifacts)
    ia, ib = artifacts.index[a], artifacts.index[b]
    valid = rows.targets >= 0
    assert valid.sum() > 1000
    assert not ((rows.tracks == ia + 1) & (rows.targets == ib)).any()
    # the model trained by the same call never saw a test session
    model = train_sequence_model(train, artifacts, config=TINY)
    assert model.trained_on == {s.session_id for s in train}
    assert not model.trained_on & {s.session_id for s in test}


def test_out_of_fold_models_never_score_the_sessions_they_were_trained_on(
    data: tuple[list[Session], TrackArtifacts],
) -> None:
    sessions, artifacts = data
    folds = train_out_of_fold(sessions, artifacts, folds=2, config=TINY)
    ids = {s.session_id for s in sessions}
    held = [h for h, _ in folds]
    assert held[0] | held[1] == ids and not held[0] & held[1]
    assert abs(len(held[0]) - len(held[1])) <= 1
    for h, model in folds:
        assert model.trained_on == ids - h
