"""The batch session-kNN and two-step scores against their one-query definitions."""

from __future__ import annotations

import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.context import state_contexts
from features.session import SessionState
from models.baselines import Catalogue, SessionKnn
from models.datasets import synthetic_sessions
from models.labelled_sessions import Session, split_sessions
from models.ranking_queries import session_queries


@pytest.fixture(scope="module")
def split() -> tuple[list[Session], list[Session]]:
    train, _, test = split_sessions(synthetic_sessions(400, seed=9))
    return train, test


@pytest.fixture(scope="module")
def artifacts(split: tuple[list[Session], list[Session]]) -> TrackArtifacts:
    return fit_artifacts(split[0], embedding_dim=8)


def test_knn_scores_are_the_v_sknn_baseline_over_the_recent_tracks(
    split: tuple[list[Session], list[Session]], artifacts: TrackArtifacts
) -> None:
    train, test = split
    catalogue = Catalogue.of(train)
    assert catalogue.track_ids == artifacts.track_ids
    baseline = SessionKnn.fit(train, catalogue, decay=True)
    states: list[SessionState] = [q.state for s in test[:15] for q in session_queries(s)]
    contexts = state_contexts(states, artifacts)
    compared = 0
    for state, ctx in zip(states, contexts, strict=True):
        proposal = baseline.propose(catalogue.indices(list(state.recent_tracks)))
        expected = np.zeros(artifacts.n_tracks + 1)
        expected[proposal.tracks] = proposal.keys[:, 0]
        assert np.allclose(ctx.knn, expected, rtol=1e-5, atol=1e-6)
        compared += int(expected.any())
    assert compared > 50


def test_two_step_scores_are_the_squared_transition_probabilities(
    split: tuple[list[Session], list[Session]], artifacts: TrackArtifacts
) -> None:
    states = [q.state for s in split[1][:5] for q in session_queries(s)]
    contexts = state_contexts(states, artifacts)
    n = artifacts.n_tracks
    dense = np.zeros((n, n))
    for a in range(n):
        succ, count = artifacts.successors(a)
        if len(succ):
            dense[a, succ] = count / artifacts.out_count[a]
    for ctx in contexts:
        if ctx.current < 0:
            assert not ctx.two_step.any()
            continue
        assert np.allclose(ctx.two_step[:n], dense[ctx.current] @ dense, atol=1e-6)
        assert ctx.two_step[n] == 0
