"""The steering evaluation's measures and hits, by hand on tiny lists."""

from __future__ import annotations

import numpy as np

from features.artifacts import TrackArtifacts, fit_artifacts
from features.session import SessionState
from features.steering import popularity_percentile
from models.labelled_sessions import LabelledPlay, Session
from models.steering_eval import Lists, _Queries, hits, measure, with_intent


def artifacts() -> TrackArtifacts:
    sessions = [
        Session(
            f"s{i}", f"u{i}", tuple(LabelledPlay(f"t{j}", "listened") for j in range(i % 5 + 2))
        )
        for i in range(40)
    ]
    return fit_artifacts(sessions, embedding_dim=3)


def queries(art: TrackArtifacts, target: list[int], current: list[int]) -> _Queries:
    n = len(target)
    taste = np.zeros((n, art.embedding_table64.shape[1]))
    taste[:, 0] = 1.0
    return _Queries(
        [],
        np.arange(n),
        np.array(target, np.int64),
        np.ones(n, bool),
        np.zeros(n, bool),
        np.array(current, np.int64),
        taste,
    )


def lists(rows: list[list[int]]) -> Lists:
    n = len(rows)
    return Lists(np.array(rows, np.int64), np.ones(n, bool), np.zeros(n, bool))


def test_hits_give_hr_and_reciprocal_rank_of_the_next_track() -> None:
    art = artifacts()
    hr, mrr = hits(lists([[3, 1, 2], [0, -1, -1], [4, 2, 1]]), queries(art, [1, 2, 4], [0, 0, 0]))
    assert hr.tolist() == [1.0, 0.0, 1.0]
    assert mrr.tolist() == [0.5, 0.0, 1.0]


def test_discover_measure_is_the_median_popularity_percentile_of_the_list() -> None:
    art = artifacts()
    pct = popularity_percentile(art, np.array([0, 1, 2, 3], np.int32))
    got = measure(
        "discover", lists([[0, 1, 2], [3, -1, -1]]), queries(art, [0, 0], [0, 0]), art, 0.9
    )
    assert got[0] == np.median(pct[:3])
    assert got[1] == pct[3]  # the end of a short list does not count


def test_near_duplicates_count_the_rejected_track_and_its_close_neighbours() -> None:
    art = artifacts()
    current = 0
    cos = art.embedding_table64[:5] @ art.embedding_table64[current]
    got = measure("less_like_this", lists([[1, 2, 3, 4]]), queries(art, [0], [current]), art, 0.9)
    assert got[0] == (cos[1:5] >= 0.9).sum() / 4
    more = measure("more_like_this", lists([[1, 2, 3, 4]]), queries(art, [0], [current]), art, 0.9)
    assert np.isclose(more[0], cos[1:5].mean())


def test_track_intents_name_the_current_track_at_the_states_event_time() -> None:
    state = SessionState(current_track="t1", last_ts=1000)
    (intent,) = with_intent(state, "more_like_this").intents
    assert (intent.kind, intent.track_id, intent.ts) == ("more_like_this", "t1", 1000)
    (mood,) = with_intent(state, "discover").intents
    assert mood.track_id is None
