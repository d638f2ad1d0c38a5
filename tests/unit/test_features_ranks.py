from __future__ import annotations

import numpy as np
import pytest

from features.artifacts import F32, TrackArtifacts, fit_artifacts
from features.context import state_context
from features.rows import FEATURE_NAMES, rows_for
from features.session import SessionEvent, SessionState, fold_events
from models.datasets import synthetic_sessions
from models.labelled_sessions import split_sessions


@pytest.fixture(scope="module")
def artifacts() -> TrackArtifacts:
    return fit_artifacts(split_sessions(synthetic_sessions(300, seed=5))[0], embedding_dim=16)


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def state_of(art: TrackArtifacts, tracks: list[int]) -> SessionState:
    events = []
    for i, track in enumerate(tracks[:-1]):
        tid = art.track_ids[track]
        events.append(SessionEvent("start", tid, 10 * i, None))
        events.append(SessionEvent("end", tid, 10 * i + 5, "listened"))
    events.append(SessionEvent("start", art.track_ids[tracks[-1]], 10 * len(tracks), None))
    return fold_events(events)


def busy_chain(art: TrackArtifacts) -> list[int]:
    """Three tracks that followed each other in training, ending on a busy track."""
    first = int(np.argmax(art.out_count))
    second = int(art.successors(first)[0][np.argmax(art.successors(first)[1])])
    third = int(art.successors(second)[0][np.argmax(art.successors(second)[1])])
    return [first, second, third]


def all_rows(art: TrackArtifacts, tracks: list[int]) -> tuple[np.ndarray, F32]:
    ctx = state_context(state_of(art, tracks), art)
    unplayed = np.setdiff1d(np.arange(art.n_tracks), ctx.played).astype(np.int32)
    return unplayed, rows_for(ctx, unplayed, art)


def test_the_t3_rank_is_the_transitions_3_order_over_the_unplayed_tracks(
    artifacts: TrackArtifacts,
) -> None:
    _, rows = all_rows(artifacts, busy_chain(artifacts))
    keys = rows[:, [col("tr3_log"), col("tr2_log"), col("tr_current_log")]].astype(np.float64)
    assert keys[:, 0].max() > 0  # the order-3 context was followed in training
    for i in range(len(rows)):
        higher = (keys[:, 0] > keys[i, 0]) | (
            (keys[:, 0] == keys[i, 0])
            & ((keys[:, 1] > keys[i, 1]) | ((keys[:, 1] == keys[i, 1]) & (keys[:, 2] > keys[i, 2])))
        )
        assert rows[i, col("t3_log_rank")] == np.float32(np.log1p(np.float32(higher.sum())))


def test_the_first_choices_get_rank_zero_and_votes(artifacts: TrackArtifacts) -> None:
    tracks, rows = all_rows(artifacts, busy_chain(artifacts))
    knn = rows[:, col("knn_score")]
    best_knn = np.flatnonzero(knn == knn.max())
    assert np.all(rows[best_knn, col("knn_log_rank")] == 0)
    assert np.all(rows[knn < knn.max(), col("knn_log_rank")] > 0)
    t1_first = rows[:, col("t1_log_rank")] == 0
    assert rows[t1_first, col("tr_current_log")].min() == rows[:, col("tr_current_log")].max()
    votes = rows[:, col("top1_votes")]
    firsts = sum(
        (rows[:, col(name)] == 0).astype(int)
        for name in ("t1_log_rank", "t2_log_rank", "t3_log_rank", "knn_log_rank")
    )
    assert np.array_equal(votes, firsts)  # no sequence model: four methods vote
    assert votes.max() >= 3  # the busiest continuation is everyone's first choice
    assert np.all(rows[:, col("top10_votes")] >= votes)
    assert np.all(rows[:, col("seq_unplayed_log_rank")] == 0)
    assert len(tracks) == len(rows)


def test_the_backoff_share_is_the_longest_followed_contexts_share(
    artifacts: TrackArtifacts,
) -> None:
    _, rows = all_rows(artifacts, busy_chain(artifacts))
    assert np.all(rows[:, col("backoff_level")] == 3)
    assert np.allclose(rows[:, col("backoff_share")], rows[:, col("tr3_share")], atol=1e-6)
    # A current track never seen in training: nothing to back off to.
    unseen = int(np.argmin(artifacts.out_count))
    assert artifacts.out_count[unseen] == 0
    ctx = state_context(state_of(artifacts, [unseen]), artifacts)
    cold = rows_for(ctx, np.arange(10, dtype=np.int32), artifacts)
    assert np.all(cold[:, col("backoff_level")] == 0)
    assert np.all(cold[:, col("backoff_share")] == 0)


def test_a_rows_ranks_do_not_depend_on_the_other_candidates(artifacts: TrackArtifacts) -> None:
    tracks, rows = all_rows(artifacts, busy_chain(artifacts))
    ctx = state_context(state_of(artifacts, busy_chain(artifacts)), artifacts)
    some = tracks[::7]
    assert np.array_equal(rows_for(ctx, some, artifacts), rows[::7])
