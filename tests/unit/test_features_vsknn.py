"""V-SKNN and two-step scores of small batches, without per-call sparse matrices: bit for bit
the sparse products' values."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from features.neighbours import (
    F32,
    GATHER_UP_TO,
    I32,
    KNN_NEIGHBOURS,
    KNN_SAMPLE,
    SessionIndex,
    session_tracks,
    transition_probabilities,
    two_step_scores,
    vsknn_scores,
)


def sparse_vsknn(recents: Sequence[I32], index: SessionIndex, width: int) -> F32:
    """The definition as two scipy sparse products (the reference)."""
    n_tracks = index.by_track.shape[0]
    out = np.zeros((len(recents), width), np.float32)
    for b, recent in enumerate(recents):
        n = len(recent)
        if n == 0:
            continue
        tracks, first = np.unique(recent[::-1], return_index=True)
        weights = (n - first) / n / len(tracks)
        known = tracks >= 0
        if not known.any():
            continue
        cols = tracks[known]
        query = sp.csr_matrix((weights[known], (np.zeros(len(cols), int), cols)), (1, n_tracks))
        overlap = (query @ index.by_track).tocsr()
        overlap.sort_indices()
        sessions, sims = overlap.indices[-KNN_SAMPLE:], overlap.data[-KNN_SAMPLE:]
        top = np.lexsort((-sessions, -sims))[:KNN_NEIGHBOURS]
        shape = (1, index.by_session.shape[0])
        nb = sp.csr_matrix((sims[top], (np.zeros(len(top), int), sessions[top])), shape)
        out[b, :n_tracks] = (nb @ index.by_session).toarray()[0]
    return out


def random_index(rng: np.random.Generator, n_sessions: int, n_tracks: int) -> SessionIndex:
    popularity = rng.zipf(1.3, n_tracks).astype(float)
    p = popularity / popularity.sum()
    seqs = [
        rng.choice(n_tracks, int(rng.integers(2, 30)), p=p).astype(np.int32)
        for _ in range(n_sessions)
    ]
    indptr, indices = session_tracks(seqs)
    return SessionIndex.of(indptr, indices, n_tracks)


def test_small_and_large_batches_score_as_the_sparse_products_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    n_tracks = 300
    index = random_index(rng, 2000, n_tracks)  # popular tracks: more than KNN_SAMPLE sessions
    recents = [
        rng.integers(-1, n_tracks, int(rng.integers(0, 21))).astype(np.int32) for _ in range(60)
    ]
    popular = int(np.argmax(np.diff(index.by_track.indptr)))
    assert np.diff(index.by_track.indptr)[popular] > KNN_SAMPLE
    recents += [np.array([-1, -1], np.int32), np.array([popular] * 3, np.int32)]
    want = sparse_vsknn(recents, index, n_tracks + 4)
    assert len(recents) > GATHER_UP_TO  # one batch: the sparse products
    got = vsknn_scores(recents, index, n_tracks + 4)
    np.testing.assert_array_equal(got, want)
    assert (got[:, n_tracks:] == 0).all()
    assert (got[-2] == 0).all() and got[-1].any()
    # small batches gather the index's rows: the same values bit for bit
    for at in range(0, len(recents), GATHER_UP_TO):
        part = recents[at : at + GATHER_UP_TO]
        np.testing.assert_array_equal(
            vsknn_scores(part, index, n_tracks + 4), want[at : at + len(part)]
        )


def test_two_step_scores_of_small_batches_are_the_sparse_products_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    n = 200
    counts = sp.random(n, n, density=0.05, random_state=3, format="csr") * 10
    counts.data = np.ceil(counts.data).astype(np.float32)
    counts.sort_indices()
    out_count = np.asarray(counts.sum(axis=1)).ravel().astype(np.float32)
    probabilities = transition_probabilities(
        counts.indptr.astype(np.int64), counts.indices, counts.data, out_count
    )
    currents = rng.integers(-1, n, 40).astype(np.int64)
    want = two_step_scores(currents, probabilities, n + 1)  # one batch: the sparse product
    assert len(currents) > GATHER_UP_TO and want.any()
    for at in range(0, len(currents), GATHER_UP_TO):
        part = currents[at : at + GATHER_UP_TO]
        got = two_step_scores(part, probabilities, n + 1)
        np.testing.assert_array_equal(got, want[at : at + len(part)])
