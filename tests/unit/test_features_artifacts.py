from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from models.datasets import synthetic_sessions
from models.labelled_sessions import LabelledPlay, Session


def session(sid: str, *plays: tuple[str, str]) -> Session:
    return Session(sid, f"u-{sid}", tuple(LabelledPlay(t, o) for t, o in plays))  # type: ignore[arg-type]


SESSIONS = [
    session("1", ("a", "listened"), ("b", "listened"), ("c", "skip_early")),
    session("2", ("a", "listened"), ("b", "skip_late"), ("d", "listened")),
    session("3", ("b", "listened"), ("c", "listened")),
]


@pytest.fixture(scope="module")
def artifacts() -> TrackArtifacts:
    return fit_artifacts(SESSIONS, embedding_dim=2)


def idx(art: TrackArtifacts, *ids: str) -> np.ndarray:
    return np.array([art.index.get(t, -1) for t in ids], dtype=np.int64)


def test_vocabulary_is_the_sorted_training_tracks(artifacts: TrackArtifacts) -> None:
    assert artifacts.track_ids == ("a", "b", "c", "d")
    assert artifacts.plays.tolist() == [2.0, 3.0, 2.0, 1.0]


def test_popularity_order_breaks_ties_by_track_id(artifacts: TrackArtifacts) -> None:
    assert [artifacts.track_ids[i] for i in artifacts.popular] == ["b", "a", "c", "d"]


def test_transitions_count_followers_and_listened_followers(artifacts: TrackArtifacts) -> None:
    src, dst = (
        idx(artifacts, "a", "b", "b", "c", "a", "x"),
        idx(artifacts, "b", "c", "d", "b", "c", "b"),
    )
    count, listened = artifacts.pair_counts(src, dst)
    # a->b twice (listened once, late skip once); b->c twice (once skipped early); b->d once.
    assert count.tolist() == [2.0, 2.0, 1.0, 0.0, 0.0, 0.0]
    assert listened.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert artifacts.out_count[artifacts.index["b"]] == 3.0
    assert artifacts.has_transition("a", "b")
    assert not artifacts.has_transition("b", "a")
    assert not artifacts.has_transition("a", "unknown")


def test_skip_rates_are_smoothed_towards_the_global_rate(artifacts: TrackArtifacts) -> None:
    global_rate = artifacts.global_skip_rate
    assert global_rate == pytest.approx(2 / 8)  # c skipped early once, b skipped late once
    c = artifacts.index["c"]
    raw = 1 / 2
    assert global_rate < artifacts.skip_rate[c] < raw
    a = artifacts.index["a"]
    assert 0.0 < artifacts.skip_rate[a] < global_rate  # never skipped, pulled up by the prior
    # The unknown-track row (index -1) holds the neutral defaults.
    assert artifacts.track_table[-1].tolist() == pytest.approx([0.0, global_rate, global_rate])


def test_embeddings_are_unit_rows_with_a_zero_row_for_unknown_tracks() -> None:
    art = fit_artifacts(synthetic_sessions(200, seed=3), embedding_dim=16)
    norms = np.linalg.norm(art.embeddings, axis=1)
    assert art.embeddings.shape == (art.n_tracks, 16)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    assert (norms > 0).mean() > 0.95
    assert not art.embedding_table[-1].any()


def test_embeddings_place_co_listened_tracks_closer_than_random_ones() -> None:
    sessions = synthetic_sessions(400, seed=3)
    art = fit_artifacts(sessions, embedding_dim=16)
    pairs = [(s.plays[i].track_id, s.plays[i + 1].track_id) for s in sessions for i in range(3)]
    a, b = idx(art, *[p[0] for p in pairs]), idx(art, *[p[1] for p in pairs])
    together = np.sum(art.embeddings[a] * art.embeddings[b], axis=1).mean()
    rng = np.random.default_rng(0)
    r1, r2 = rng.integers(0, art.n_tracks, 2000), rng.integers(0, art.n_tracks, 2000)
    apart = np.sum(art.embeddings[r1] * art.embeddings[r2], axis=1).mean()
    assert together > apart + 0.2


def test_fit_is_deterministic_and_save_load_round_trips(tmp_path: Path) -> None:
    sessions = synthetic_sessions(150, seed=4)
    art = fit_artifacts(sessions, embedding_dim=8)
    again = fit_artifacts(sessions, embedding_dim=8)
    assert np.array_equal(art.embeddings, again.embeddings)
    art.save(tmp_path)
    loaded = TrackArtifacts.load(tmp_path)
    assert loaded.track_ids == art.track_ids
    assert loaded.params == art.params
    for name in ("plays", "skip_rate", "trans_keys", "trans_count", "embedding_table", "popular"):
        assert np.array_equal(getattr(loaded, name), getattr(art, name)), name


def test_higher_order_and_skip_aware_transitions_count_the_training_plays(
    artifacts: TrackArtifacts,
) -> None:
    a, b, c, d = (artifacts.index[t] for t in "abcd")
    two = artifacts.ngram2
    codes = two.context_codes(np.array([[a, b], [b, c], [-1, b]], np.int64))
    assert codes[2] == -1
    # (a, b) -> c once (session 1), (a, b) -> d once (session 2); (b, c) never continued.
    counts = two.pair_counts(codes[[0, 0, 0, 1, 2]], np.array([c, d, a, a, c], np.int64))
    assert counts.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert two.totals(codes).tolist() == [2.0, 0.0, 0.0]
    lo, hi = two.spans(codes[:1])
    assert sorted((two.keys[lo[0] : hi[0]] % artifacts.n_tracks).tolist()) == [c, d]
    assert artifacts.ngram3.keys.size == 0  # no session has four plays
    # b -> c twice: after a listened b (session 3) and after a listened b (session 1);
    # b -> d once, after b was skipped late (session 2).
    succ, _ = artifacts.successors(b)
    lo_b = artifacts.trans_indptr[b]
    values = artifacts.trans_after_skip[lo_b : lo_b + len(succ)].tolist()
    after_skip = dict(zip(succ.tolist(), values, strict=True))
    assert after_skip == {c: 0.0, d: 1.0}


def test_new_artifacts_see_nothing_of_sessions_they_are_not_fitted_on() -> None:
    """Transitions planted in test sessions only reach neither the n-gram tables, the
    skip-aware counts nor the session index."""
    train = synthetic_sessions(120, seed=5)
    planted = [
        session(f"test-{i}", ("syn-t1", "listened"), ("syn-t2", "skip_early"), ("new", "listened"))
        for i in range(30)
    ]
    art = fit_artifacts(train, embedding_dim=4)
    assert "new" not in art.index
    t1, t2 = art.index["syn-t1"], art.index["syn-t2"]
    code = art.ngram2.context_codes(np.array([[t1, t2]], np.int64))
    with_test = fit_artifacts(train + planted, embedding_dim=4)
    assert (
        with_test.ngram2.totals(
            with_test.ngram2.context_codes(
                np.array([[with_test.index["syn-t1"], with_test.index["syn-t2"]]], np.int64)
            )
        )[0]
        >= 30
    )  # the plant is visible when fitted on it ...
    assert art.ngram2.totals(code)[0] < 30  # ... and absent otherwise
    assert art.session_indptr[-1] == sum(len({p.track_id for p in s.plays}) for s in train)
    assert len(art.session_indptr) == len(train) + 1
    assert float(art.trans_after_skip.sum()) == sum(
        p.outcome != "listened" for s in train for p in s.plays[:-1]
    )
