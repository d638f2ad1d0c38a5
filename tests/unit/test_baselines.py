from __future__ import annotations

import math

import numpy as np
import pytest

from models.baselines import (
    BASELINES,
    Catalogue,
    EmbeddingSimilarity,
    NextTrackScorer,
    Popularity,
    Proposal,
    SequenceFilteredKnn,
    SessionKnn,
    Transitions,
    top_k,
)
from models.labelled_sessions import LabelledPlay, Session


def session(sid: str, *tracks: str) -> Session:
    return Session(sid, f"u-{sid}", tuple(LabelledPlay(t, "listened") for t in tracks))


def ranked(scorer: NextTrackScorer, catalogue: Catalogue, prefix: list[str], k: int) -> list[str]:
    idx = catalogue.indices(prefix)
    return [catalogue.track_ids[i] for i in top_k(scorer.propose(idx), catalogue, idx, k)]


# Popularity: z 5 plays, y 4, x 3, a 3, b 2, c 1 (ties by id: a before x).
POP_SESSIONS = [
    session("p1", "z", "z", "z", "z", "z"),
    session("p2", "y", "y", "y", "y"),
    session("p3", "x", "x", "x", "a", "a", "a"),
    session("p4", "b", "b", "c"),
]


def test_popularity_ranks_by_plays_then_id_and_skips_played_tracks() -> None:
    cat = Catalogue.of(POP_SESSIONS)
    pop = Popularity.fit(POP_SESSIONS, cat)
    assert ranked(pop, cat, [], 6) == ["z", "y", "a", "x", "b", "c"]
    assert ranked(pop, cat, ["y", "a"], 3) == ["z", "x", "b"]
    assert ranked(pop, cat, ["unknown-track"], 2) == ["z", "y"]


def test_top_k_orders_proposals_lexicographically_then_fills_by_popularity() -> None:
    cat = Catalogue.of(POP_SESSIONS)
    i = cat.index
    tracks = np.array([i["c"], i["b"], i["x"]])
    keys = np.array([[1.0, 0.0], [1.0, 5.0], [2.0, 0.0]])
    played = np.array([i["z"]])
    top = top_k(Proposal(tracks, keys), cat, played, 5)
    assert [cat.track_ids[t] for t in top] == ["x", "b", "c", "y", "a"]
    # One level, more proposals than k: ties at the cut go by popularity.
    dense = Proposal.dense(np.ones(cat.n_tracks))
    assert [cat.track_ids[t] for t in top_k(dense, cat, played, 2)] == ["y", "a"]


# Transitions: after (a, b) came c twice; after b came d three times and c twice; after a: b.
SEQ_SESSIONS = [
    session("s1", "a", "b", "c"),
    session("s2", "a", "b", "c"),
    session("s3", "x", "b", "d"),
    session("s4", "y", "b", "d"),
    session("s5", "y", "b", "d"),
    session("s6", "e", "e", "e", "e", "e", "e", "e", "e"),
]


def test_first_order_transitions_count_from_the_current_track() -> None:
    cat = Catalogue.of(SEQ_SESSIONS)
    first = Transitions.fit(SEQ_SESSIONS, cat, order=1)
    # d 3 times after b, c twice; then popularity (e, b... but b is played).
    assert ranked(first, cat, ["a", "b"], 4) == ["d", "c", "e", "y"]


def test_higher_order_transitions_back_off_to_shorter_contexts() -> None:
    cat = Catalogue.of(SEQ_SESSIONS)
    third = Transitions.fit(SEQ_SESSIONS, cat, order=3)
    # (a, b) was followed by c only: c first, then the last track's followers: d.
    assert ranked(third, cat, ["a", "b"], 3) == ["c", "d", "e"]
    # (q, b) and (q, a, b) were never seen (q unknown): back off to b alone.
    assert ranked(third, cat, ["q", "a", "b"], 2) == ["c", "d"]
    assert ranked(third, cat, ["y", "b"], 2) == ["d", "c"]
    # (x, b) was followed by d only; b alone then adds c.
    assert ranked(third, cat, ["x", "b"], 2) == ["d", "c"]
    proposal = third.propose(cat.indices(["a", "b"]))
    keys = dict(
        zip([cat.track_ids[t] for t in proposal.tracks], proposal.keys.tolist(), strict=True)
    )
    assert keys == {"c": [0.0, 2.0, 2.0], "d": [0.0, 0.0, 3.0]}


def test_transitions_never_propose_played_tracks() -> None:
    cat = Catalogue.of(SEQ_SESSIONS)
    second = Transitions.fit(SEQ_SESSIONS, cat, order=2)
    assert ranked(second, cat, ["d", "a", "b"], 2) == ["c", "e"]


# Session kNN. The current session is (a, b). Training sessions, oldest first:
KNN_SESSIONS = [
    session("k0", "a", "c"),  # shares a: cos 1/sqrt(2*2) = 0.5
    session("k1", "b", "d", "e", "f"),  # shares b: cos 1/sqrt(2*4) = 0.354
    session("k2", "a", "b", "g"),  # shares a, b: cos 2/sqrt(2*3) = 0.816
    session("k3", "h", "i"),  # shares nothing
]


def test_sknn_scores_tracks_by_the_cosine_of_their_neighbour_sessions() -> None:
    cat = Catalogue.of(KNN_SESSIONS)
    knn = SessionKnn.fit(KNN_SESSIONS, cat, k=2, sample_size=10)
    sessions, sims = knn.neighbours(cat.indices(["a", "b"]))
    assert sessions.tolist() == [2, 0]  # k=2 most similar of the three sharing a track
    assert sims.tolist() == pytest.approx([2 / math.sqrt(6), 0.5])
    # g from k2 (0.816), c from k0 (0.5); then popularity fills (a, b played).
    assert ranked(knn, cat, ["a", "b"], 2) == ["g", "c"]
    all_three = SessionKnn.fit(KNN_SESSIONS, cat, k=3, sample_size=10)
    proposal = all_three.propose(cat.indices(["a", "b"]))
    scores = dict(
        zip([cat.track_ids[t] for t in proposal.tracks], proposal.keys[:, 0], strict=True)
    )
    assert scores["d"] == pytest.approx(1 / math.sqrt(8))
    assert scores["a"] == pytest.approx(0.5 + 2 / math.sqrt(6))


def test_sknn_samples_the_most_recent_sessions_sharing_a_track() -> None:
    cat = Catalogue.of(KNN_SESSIONS)
    knn = SessionKnn.fit(KNN_SESSIONS, cat, k=5, sample_size=2)
    sessions, _ = knn.neighbours(cat.indices(["a", "b"]))
    assert sorted(sessions.tolist()) == [1, 2]  # k0 is older than the 2-session sample


def test_v_sknn_weighs_the_session_by_a_linear_position_decay() -> None:
    sessions = [
        session("v0", "a", "x"),  # shares the OLDER track a (weight 1/2)
        session("v1", "b", "y"),  # shares the current track b (weight 1)
    ]
    cat = Catalogue.of(sessions)
    prefix = cat.indices(["a", "b"])
    plain = SessionKnn.fit(sessions, cat, k=5, sample_size=10, decay=False)
    decayed = SessionKnn.fit(sessions, cat, k=5, sample_size=10, decay=True)
    _, plain_sims = plain.neighbours(prefix)
    assert plain_sims.tolist() == pytest.approx([0.5, 0.5])  # a tie: more recent v1 first
    found, sims = decayed.neighbours(prefix)
    assert found.tolist() == [1, 0]
    assert sims.tolist() == pytest.approx([1.0 / 2, 0.5 / 2])  # dot product / distinct tracks
    assert ranked(decayed, cat, ["a", "b"], 2) == ["y", "x"]
    # A repeated track keeps its latest position: (b, a, b) weighs b 3/3 and a 2/3.
    tracks, weights, size = decayed.query_weights(cat.indices(["b", "a", "b"]))
    assert dict(zip(tracks.tolist(), weights.tolist(), strict=True)) == pytest.approx(
        {cat.index["a"]: 2 / 3, cat.index["b"]: 1.0}
    )
    assert size == 2


def test_sf_sknn_counts_only_what_followed_the_current_track_in_the_neighbours() -> None:
    sessions = [
        session("f0", "a", "b", "c", "b", "d"),  # shares a and b; b followed by c, then by d
        session("f1", "b", "e"),  # shares b only; b followed by e
        session("f2", "x", "y"),  # shares nothing: not a neighbour
    ]
    cat = Catalogue.of(sessions)
    knn = SessionKnn.fit(sessions, cat, k=5, sample_size=10)
    sf = SequenceFilteredKnn.fit(sessions, cat, knn)
    prefix = cat.indices(["a", "b"])
    found, sims = sf.knn.neighbours(prefix)
    assert found.tolist() == [0, 1]
    f0, f1 = 2 / math.sqrt(2 * 4), 1 / math.sqrt(2 * 2)  # the SKNN cosines
    assert sims.tolist() == pytest.approx([f0, f1])
    proposal = sf.propose(prefix)
    tracks = [cat.track_ids[t] for t in proposal.tracks]
    scores = dict(zip(tracks, proposal.keys[:, 0].tolist(), strict=True))
    # a, the neighbours' other track before b, is not proposed; nor are x and y
    assert scores == pytest.approx({"c": f0, "d": f0, "e": f1})
    assert ranked(sf, cat, ["a", "b"], 3) == ["c", "d", "e"]
    assert len(sf.propose(cat.indices(["a", "unknown"])).tracks) == 0
    with pytest.raises(ValueError, match="fitted on 2 sessions"):
        SequenceFilteredKnn.fit(sessions, cat, SessionKnn.fit(sessions[:2], cat))


def test_embedding_similarity_ranks_by_cosine_to_the_current_track() -> None:
    # Two separate groups of tracks that co-occur only among themselves.
    sessions = [session(f"g{i}", "a", "b", "c", "a", "b", "c") for i in range(6)]
    sessions += [session(f"h{i}", "x", "y", "z", "x", "y", "z") for i in range(6)]
    sessions += [session("pop", *(["x"] * 20))]
    cat = Catalogue.of(sessions)
    emb = EmbeddingSimilarity.fit(sessions, cat)
    assert set(ranked(emb, cat, ["a"], 2)) == {"b", "c"}  # x is more popular but unrelated
    assert ranked(emb, cat, ["unknown"], 1) == ["x"]  # no vector: popularity


def test_every_baseline_excludes_every_played_track() -> None:
    sessions = [*SEQ_SESSIONS, *KNN_SESSIONS]
    cat = Catalogue.of(sessions)
    prefix = cat.indices(["a", "b", "c", "d", "e"])
    for method in BASELINES:
        scorer = method.fit(sessions, cat)
        top = top_k(scorer.propose(prefix), cat, prefix, cat.n_tracks)
        assert len(top) == cat.n_tracks - 5, method.name
        assert not set(top.tolist()) & set(prefix.tolist()), method.name
