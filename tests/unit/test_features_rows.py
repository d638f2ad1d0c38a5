from __future__ import annotations

import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.candidates import generate_candidates
from features.context import state_context
from features.rows import FEATURE_NAMES, N_FEATURES, build_rows, rows_for, rows_for_many
from features.session import SessionEvent, SessionState, fold_events
from models.datasets import synthetic_sessions
from models.labelled_sessions import split_sessions


@pytest.fixture(scope="module")
def artifacts() -> TrackArtifacts:
    return fit_artifacts(split_sessions(synthetic_sessions(300, seed=5))[0], embedding_dim=16)


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def state_of(art: TrackArtifacts, plays: list[tuple[int, str]], current: int) -> SessionState:
    events = []
    for i, (track, outcome) in enumerate(plays):
        tid = art.track_ids[track]
        events.append(SessionEvent("start", tid, 10 * i, None))
        events.append(SessionEvent("end", tid, 10 * i + 5, outcome))  # type: ignore[arg-type]
    events.append(SessionEvent("start", art.track_ids[current], 10 * len(plays), None))
    return fold_events(events)


def test_feature_names_are_unique_and_match_the_row_width() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == N_FEATURES


def test_rows_hold_the_session_features_and_the_pair_counts(artifacts: TrackArtifacts) -> None:
    busiest = int(np.argmax(artifacts.out_count))
    first, second = int(artifacts.popular[0]), int(artifacts.popular[1])
    state = state_of(artifacts, [(first, "listened"), (second, "skip_early")], busiest)
    cands = generate_candidates(state_context(state, artifacts), artifacts, 200).tracks
    rows = build_rows(state, [artifacts.track_ids[t] for t in cands], artifacts)
    assert rows.shape == (200, N_FEATURES)
    assert rows.dtype == np.float32
    assert np.all(rows[:, col("session_position")] == 3)
    assert np.all(rows[:, col("session_plays")] == 2)
    assert np.all(rows[:, col("session_skips")] == 1)
    assert np.all(rows[:, col("session_skip_rate")] == 0.5)
    assert np.all(rows[:, col("session_consecutive_skips")] == 1)
    cur = np.full(len(cands), busiest, np.int64)
    count, listened = artifacts.pair_counts(cur, cands.astype(np.int64))
    assert np.array_equal(rows[:, col("tr_current_log")], np.log1p(count))
    assert np.allclose(rows[:, col("tr_current_listened_log")], np.log1p(listened))
    assert np.allclose(
        rows[:, col("tr_current_share")], count / artifacts.out_count[busiest], atol=1e-5
    )
    last_listened = np.full(len(cands), first, np.int64)
    ll, _ = artifacts.pair_counts(last_listened, cands.astype(np.int64))
    assert np.allclose(rows[:, col("tr_last_listened_log")], np.log1p(ll))
    reverse, _ = artifacts.pair_counts(cands.astype(np.int64), cur)
    assert np.allclose(rows[:, col("tr_reverse_log")], np.log1p(reverse))
    sims = artifacts.embeddings[cands] @ artifacts.embeddings[busiest]
    assert np.allclose(rows[:, col("sim_current")], sims, atol=1e-6)
    assert np.allclose(rows[:, col("cand_log_plays")], np.log1p(artifacts.plays[cands]))


def test_unknown_candidates_and_tracks_get_neutral_defaults(artifacts: TrackArtifacts) -> None:
    state = fold_events([SessionEvent("start", "not-in-training", 0, None)])
    rows = build_rows(state, ["also-unknown", artifacts.track_ids[0]], artifacts)
    assert rows[0, col("cand_log_plays")] == 0.0
    assert rows[0, col("cand_skip_rate")] == pytest.approx(artifacts.global_skip_rate)
    assert rows[:, col("current_known")].tolist() == [0.0, 0.0]
    for name in FEATURE_NAMES:
        if name.startswith("tr_") and name != "tr_current_listen_rate":
            assert not rows[:, col(name)].any(), name
    assert not rows[:, col("colisten_recent_log")].any()
    # Without any transition, the listen rate is the candidate's own.
    assert rows[1, col("tr_current_listen_rate")] == pytest.approx(
        1.0 - rows[1, col("cand_skip_rate")]
    )
    assert not rows[:, col("sim_current")].any()
    assert np.isfinite(rows).all()


def test_rows_depend_only_on_the_state_not_on_the_batch(artifacts: TrackArtifacts) -> None:
    state = state_of(artifacts, [(3, "listened"), (4, "skip_late")], 5)
    ctx = state_context(state, artifacts)
    tracks = generate_candidates(ctx, artifacts, 50).tracks
    whole = rows_for(ctx, tracks, artifacts)
    one_by_one = np.vstack([rows_for(ctx, tracks[i : i + 1], artifacts) for i in range(50)])
    assert np.array_equal(whole, one_by_one)
    assert np.array_equal(whole, rows_for(state_context(state, artifacts), tracks, artifacts))


def test_a_batch_of_states_gives_each_state_its_own_rows(artifacts: TrackArtifacts) -> None:
    states = [
        SessionState(),
        state_of(artifacts, [(3, "listened"), (4, "skip_late")], 5),
        state_of(artifacts, [(7, "skip_early")], 8),
        fold_events([SessionEvent("start", "not-in-training", 0, None)]),
    ]
    contexts = [state_context(s, artifacts) for s in states]
    tracks = [generate_candidates(c, artifacts, 40).tracks for c in contexts]
    tracks[2] = np.concatenate([tracks[2], np.array([-1], np.int32)])  # an unknown candidate
    tracks.insert(1, np.empty(0, np.int32))  # a state without candidates
    contexts.insert(1, contexts[0])
    batch = rows_for_many(contexts, tracks, artifacts)
    alone = np.vstack([rows_for(c, t, artifacts) for c, t in zip(contexts, tracks, strict=True)])
    assert batch.shape == (sum(len(t) for t in tracks), N_FEATURES)
    assert np.array_equal(batch, alone)
    assert rows_for_many([], [], artifacts).shape == (0, N_FEATURES)
