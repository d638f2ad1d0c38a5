"""The sequence model's inputs: one feature path for the stream and for training."""

from __future__ import annotations

import numpy as np

from features.artifacts import TrackArtifacts, fit_artifacts
from features.sequence import (
    SEQUENCE_LENGTH,
    UNKNOWN_OUTCOME,
    sequence_inputs,
    session_sequences,
)
from features.session import SessionEvent, SessionState, apply_event, fold_events
from models.datasets import synthetic_sessions
from models.labelled_sessions import LabelledPlay, Session, split_sessions
from models.ranking_queries import session_queries
from tests.unit.test_features_parity import online_states, real_sessions


def _artifacts(tracks: list[str]) -> TrackArtifacts:
    plays = tuple(LabelledPlay(t, "listened") for t in tracks)
    return fit_artifacts([Session("s", "u", plays)])


def _start(track: str, ts: int) -> SessionEvent:
    return SessionEvent("start", track, ts, None)


def _end(track: str, ts: int, outcome: str) -> SessionEvent:
    return SessionEvent("end", track, ts, outcome)  # type: ignore[arg-type]


def test_the_state_keeps_each_recent_play_s_outcome_aligned_with_its_track() -> None:
    state = fold_events(
        [
            _start("a", 1),
            _end("a", 2, "skip_early"),
            _start("b", 3),
            _start("c", 4),  # b's end has not arrived
            _end("b", 5, "listened"),  # it arrives late: it still lands on b
        ]
    )
    assert state.recent_tracks == ("a", "b", "c")
    assert state.recent_outcomes == ("skip_early", "listened", "")


def test_outcomes_follow_the_window_of_recent_tracks() -> None:
    state = SessionState()
    for i in range(SEQUENCE_LENGTH + 5):
        state = apply_event(state, _start(f"t{i}", 2 * i))
        state = apply_event(state, _end(f"t{i}", 2 * i + 1, "skip_late" if i % 2 else "listened"))
    assert len(state.recent_tracks) == len(state.recent_outcomes) == SEQUENCE_LENGTH
    assert state.recent_tracks[0] == "t5"
    assert state.recent_outcomes[0] == "skip_late"


def test_inputs_are_the_last_plays_oldest_first_right_padded_unknown_tracks_zero() -> None:
    artifacts = _artifacts(["a", "b", "c"])
    index = artifacts.index
    state = fold_events(
        [
            _start("a", 1),
            _end("a", 2, "skip_late"),
            _start("zz-unknown", 3),
            _end("zz-unknown", 4, "skip_early"),
            _start("c", 5),
        ]
    )
    tracks, outcomes, lengths = sequence_inputs([state, SessionState()], artifacts, length=4)
    assert tracks.tolist() == [[index["a"] + 1, 0, index["c"] + 1, 0], [0, 0, 0, 0]]
    assert outcomes.tolist() == [[2, 1, UNKNOWN_OUTCOME, 0], [0, 0, 0, 0]]
    assert lengths.tolist() == [3, 0]
    tracks, _, lengths = sequence_inputs([state], artifacts, length=2)
    assert tracks.tolist() == [[0, index["c"] + 1]]
    assert lengths.tolist() == [2]
    empty = sequence_inputs([], artifacts)
    assert [a.shape for a in empty] == [(0, SEQUENCE_LENGTH), (0, SEQUENCE_LENGTH), (0,)]


def _check_training_rows_equal_online_inputs(sessions: list[Session], length: int) -> int:
    train, _, test = split_sessions(sessions)
    artifacts = fit_artifacts(train)
    held = test[:30] + train[:30]
    rows = session_sequences(held, artifacts, length)
    row = 0
    compared = 0
    for session in held:
        n = len(session.plays)
        windows = max(1, -(-(n - 1) // length))
        states = online_states(session)
        queries = list(session_queries(session))
        assert [q.state for q in queries] == states[: len(queries)]
        for p, state in enumerate(states):  # 0-based play p has just started
            w, t = divmod(p, length)  # play p is step t of window w
            if w == windows:  # a last play that starts a window of its own: no target
                assert p == n - 1
                continue
            r = row + w
            tracks, outcomes, lengths = sequence_inputs([state], artifacts, length)
            k = int(lengths[0])
            # the online window ends at play p; the training row holds it at step t
            assert k >= t + 1
            assert tracks[0, k - t - 1 : k].tolist() == rows.tracks[r, : t + 1].tolist()
            assert outcomes[0, k - t - 1 : k - 1].tolist() == rows.outcomes[r, :t].tolist()
            assert outcomes[0, k - 1] == UNKNOWN_OUTCOME
            if k == t + 1:  # the whole online window is in the row: identical inputs
                assert (tracks[0, k:] == 0).all()
            nxt = session.plays[p + 1].track_id if p + 1 < n else None
            expected = artifacts.index.get(nxt, -1) if nxt is not None else -1
            assert rows.targets[r, t] == expected
            compared += 1
        row += windows
    assert row == len(rows.tracks)
    return compared


def test_training_rows_equal_the_stream_s_inputs_at_every_position_on_real_sessions() -> None:
    assert _check_training_rows_equal_online_inputs(real_sessions()[:300], SEQUENCE_LENGTH) > 1000


def test_long_sessions_are_cut_into_windows_that_cover_every_transition_once() -> None:
    sessions = synthetic_sessions(120)
    assert max(len(s.plays) for s in sessions) > 7
    assert _check_training_rows_equal_online_inputs(sessions, 7) > 500
    rows = session_sequences(sessions, fit_artifacts(sessions), 7)
    transitions = sum(len(s.plays) - 1 for s in sessions)
    assert int((rows.targets >= 0).sum()) == transitions
    assert np.all(rows.target_outcomes[rows.targets >= 0] > 0)
