from __future__ import annotations

import numpy as np
import pytest

from features.artifacts import TrackArtifacts, fit_artifacts
from features.candidates import COLISTEN, POPULAR, SOURCES, TASTE, generate_candidates
from features.context import state_context
from features.session import SessionEvent, SessionState, fold_events
from models.datasets import synthetic_sessions
from models.labelled_sessions import Session, split_sessions
from models.ranking_queries import session_queries


@pytest.fixture(scope="module")
def sessions() -> list[Session]:
    return synthetic_sessions(400, seed=21)


@pytest.fixture(scope="module")
def artifacts(sessions: list[Session]) -> TrackArtifacts:
    return fit_artifacts(split_sessions(sessions)[0], embedding_dim=16)


def played_state(*plays: tuple[str, str]) -> SessionState:
    events = []
    for i, (track, outcome) in enumerate(plays):
        events.append(SessionEvent("start", track, 1_000 + 2 * i, None))
        events.append(SessionEvent("end", track, 1_001 + 2 * i, outcome))  # type: ignore[arg-type]
    return fold_events(events)


def test_candidates_are_distinct_exclude_played_tracks_and_fill_to_n(
    artifacts: TrackArtifacts, sessions: list[Session]
) -> None:
    for query in [q for s in sessions[:40] for q in session_queries(s)]:
        cands = generate_candidates(state_context(query.state, artifacts), artifacts, 200)
        ids = {artifacts.track_ids[t] for t in cands.tracks}
        assert len(ids) == len(cands) == 200
        assert not ids & query.state.played
        assert len(cands.sources) == 200


def test_co_listen_successors_of_the_current_track_come_first(artifacts: TrackArtifacts) -> None:
    busiest = int(np.argmax(artifacts.out_count))
    current = artifacts.track_ids[busiest]
    succ, counts = artifacts.successors(busiest)
    state = fold_events([SessionEvent("start", current, 1_000, None)])
    cands = generate_candidates(state_context(state, artifacts), artifacts, 200)
    n_colisten = int(np.sum(cands.sources == COLISTEN))
    assert n_colisten == len(set(succ.tolist()) - {busiest})
    best = succ[np.argmax(counts)]
    assert cands.tracks[0] == best
    assert cands.sources[0] == COLISTEN
    # Colisten first, then taste, then popular: the source codes never decrease.
    assert np.all(np.diff(cands.sources.astype(int)) >= 0)


def test_taste_neighbours_appear_once_something_was_listened(artifacts: TrackArtifacts) -> None:
    listened = artifacts.track_ids[int(artifacts.popular[5])]
    state = played_state((listened, "listened"))
    cands = generate_candidates(state_context(state, artifacts), artifacts, 200)
    taste = cands.tracks[cands.sources == TASTE]
    assert len(taste) > 0
    sims = artifacts.embeddings[taste] @ artifacts.embeddings[artifacts.index[listened]]
    assert np.all(np.diff(sims) <= 1e-6)  # nearest first


def test_new_session_gets_the_most_popular_tracks(artifacts: TrackArtifacts) -> None:
    cands = generate_candidates(state_context(SessionState(), artifacts), artifacts, 50)
    assert cands.tracks.tolist() == artifacts.popular[:50].tolist()
    assert set(cands.source_names()) == {SOURCES[POPULAR]}


def test_unknown_tracks_fall_back_to_popular(artifacts: TrackArtifacts) -> None:
    state = played_state(("never-seen-1", "listened"), ("never-seen-2", "skip_early"))
    cands = generate_candidates(state_context(state, artifacts), artifacts, 30)
    assert cands.tracks.tolist() == artifacts.popular[:30].tolist()


def test_smaller_lists_keep_the_priority_order(artifacts: TrackArtifacts) -> None:
    busiest = artifacts.track_ids[int(np.argmax(artifacts.out_count))]
    state = played_state((busiest, "listened"))
    full = generate_candidates(state_context(state, artifacts), artifacts, 200)
    short = generate_candidates(state_context(state, artifacts), artifacts, 5)
    assert short.tracks.tolist() == full.tracks[:5].tolist()
