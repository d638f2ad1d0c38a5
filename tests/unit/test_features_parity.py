"""Offline/online parity: the stream's per-event path gives exactly the training rows.

Online, the worker receives each play event as bytes, validates it, turns it into a compact
record (``encode_event``) stored in Redis, reads the records back (``decode_event``) and folds
them with ``apply_event``; after each ``track_start`` it builds the candidates' feature rows.
Offline, training folds the session's records and builds rows at each prefix. Both must agree
bit for bit, on real sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.candidates import generate_candidates
from features.context import state_context
from features.rows import FEATURE_NAMES, rows_for
from features.session import (
    SessionState,
    apply_event,
    decode_event,
    encode_event,
    to_session_event,
)
from models.datasets import load_mssd, synthetic_sessions
from models.labelled_sessions import Session, session_events, session_records, split_sessions
from models.ranking_queries import RankingData, session_queries, training_data
from nowplaying.events import Rejection, TrackStart, parse_play_event

REAL_MSSD = Path("../shared/data/mssd-derived-sessions/mini-spotify-data.csv")


def real_sessions() -> list[Session]:
    if REAL_MSSD.exists():
        return load_mssd(REAL_MSSD, limit=800)
    pytest.fail(f"the real sessions are needed for the parity test: {REAL_MSSD} is missing")


class StateScores:
    """A stand-in sequence model: a score per track that is a pure function of the state (the
    embedding similarity to the recent tracks, weighted by position), like the real model's
    ONNX scores of a state."""

    def scores(self, states: Sequence[SessionState], artifacts: TrackArtifacts) -> np.ndarray:
        out = np.empty((len(states), artifacts.n_tracks), np.float32)
        table = artifacts.embedding_table64
        for b, state in enumerate(states):
            recent = artifacts.indices_of(state.recent_tracks)
            weights = np.arange(1, len(recent) + 1, dtype=np.float64)
            out[b] = table[:-1] @ (weights @ table[recent]) if len(recent) else 0.0
        return out


SEQUENCE: StateScores | None = None


@pytest.fixture(scope="module", params=["real", "synthetic", "real+sequence"])
def setup(request: pytest.FixtureRequest) -> tuple[list[Session], TrackArtifacts, RankingData]:
    global SEQUENCE  # noqa: PLW0603 - the variant the module's tests run
    SEQUENCE = StateScores() if request.param.endswith("sequence") else None
    sessions = real_sessions() if request.param.startswith("real") else synthetic_sessions(300)
    train, _, test = split_sessions(sessions)
    artifacts = fit_artifacts(train)
    held_out = test[:40] + train[:40]  # unseen and seen sessions alike
    queries = [q for s in held_out for q in session_queries(s)]
    scorer = SEQUENCE
    data = training_data(
        queries,
        artifacts,
        negatives=25,
        hard_negatives=10,
        candidates=200,
        seed=3,
        sequence=None
        if scorer is None
        else (lambda chunk: scorer.scores([q.state for q in chunk], artifacts)),
    )
    return held_out, artifacts, data


def online_states(session: Session) -> list[SessionState]:
    """The worker's path: bytes -> event -> record -> Redis string -> record -> fold."""
    stored: list[str] = []
    states = []
    state = SessionState()
    for event in session_events(session):
        parsed = parse_play_event(event.model_dump_json().encode())
        assert not isinstance(parsed, Rejection)
        stored.append(encode_event(to_session_event(parsed)))
        state = apply_event(state, decode_event(stored[-1].encode()))
        if isinstance(parsed, TrackStart):
            states.append(state)
    return states


def test_training_records_are_what_the_stream_derives_from_the_events(
    setup: tuple[list[Session], TrackArtifacts, RankingData],
) -> None:
    sessions, _, _ = setup
    for session in sessions:
        records = [to_session_event(e) for e in session_events(session)]
        assert session_records(session) == records


def test_online_rows_equal_training_rows_at_every_prefix(
    setup: tuple[list[Session], TrackArtifacts, RankingData],
) -> None:
    sessions, artifacts, data = setup
    offsets = np.concatenate([[0], np.cumsum(data.groups)])
    by_key = {key: (offsets[i], offsets[i + 1]) for i, key in enumerate(data.keys)}
    compared = 0
    for session in sessions:
        for position, state in enumerate(online_states(session), start=1):
            span = by_key.get((session.session_id, position))
            if span is None:
                continue  # not a training query (last play, early skip, repeat)
            lo, hi = span
            tracks = data.tracks[lo:hi]
            seq = None if SEQUENCE is None else SEQUENCE.scores([state], artifacts)
            ctx = state_context(state, artifacts, seq)
            assert np.array_equal(rows_for(ctx, tracks, artifacts), data.rows[lo:hi])
            # The negatives are the generator's own candidates for this state, and the rows
            # the worker scores for the full list hold the very same values.
            full = generate_candidates(ctx, artifacts, 200).tracks
            full_rows = rows_for(ctx, full, artifacts)
            labels = data.labels[lo:hi]
            negatives = tracks[labels == 0]
            where = {t: i for i, t in enumerate(full.tolist())}
            assert all(t in where for t in negatives.tolist())
            picked = full_rows[[where[t] for t in negatives.tolist()]]
            assert np.array_equal(picked, data.rows[lo:hi][labels == 0])
            compared += 1
    assert compared >= 0.3 * data.n_queries
    seq_logit = data.rows[:, FEATURE_NAMES.index("seq_logit")]
    assert seq_logit.any() == (SEQUENCE is not None)
    assert compared > 50


def test_a_prefix_state_knows_nothing_of_the_future(
    setup: tuple[list[Session], TrackArtifacts, RankingData],
) -> None:
    sessions, _, _ = setup
    for session in sessions[:20]:
        for query in session_queries(session):
            state = query.state
            assert state.position == query.position
            assert state.plays == query.position - 1  # the current track has not ended
            assert state.current_track == session.plays[query.position - 1].track_id
            seen = {p.track_id for p in session.plays[: query.position]}
            assert state.played == seen
