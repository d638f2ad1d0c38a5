"""Batch feature code: a state's context, candidates and rows do not depend on its batch, and
the batch code computes what the one-state definitions say (reference implementations here)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

import features.candidates as candidates_module
import features.context as context_module
import features.rows as rows_module
from features.artifacts import TrackArtifacts, fit_artifacts
from features.candidates import (
    COLISTEN,
    COLISTEN_QUOTA,
    KNN,
    KNN_QUOTA,
    NGRAM,
    NGRAM_QUOTA,
    POPULAR,
    TASTE,
    TASTE_QUOTA,
    TWO_STEP,
    TWO_STEP_QUOTA,
    Candidates,
    generate_candidates,
    generate_candidates_many,
)
from features.context import (
    COLISTEN_DECAY,
    COLISTEN_DEPTH,
    StateContext,
    state_context,
    state_contexts,
)
from features.rows import FEATURE_NAMES, rows_for, rows_for_many
from features.session import SessionState
from models.datasets import synthetic_sessions
from models.labelled_sessions import Session, split_sessions
from models.ranking_queries import session_queries


@pytest.fixture(scope="module")
def sessions() -> list[Session]:
    return synthetic_sessions(300, seed=29)


@pytest.fixture(scope="module")
def artifacts(sessions: list[Session]) -> TrackArtifacts:
    return fit_artifacts(split_sessions(sessions)[0], embedding_dim=16)


@pytest.fixture(scope="module")
def states(sessions: list[Session], artifacts: TrackArtifacts) -> list[SessionState]:
    """Real-ish states plus edited ones: empty, unknown tracks, no taste lists, long sessions
    whose played set covers many would-be candidates."""
    real = [q.state for s in split_sessions(sessions)[2][:12] for q in session_queries(s)]
    rng = random.Random(5)

    def mangle(ids: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t if rng.random() < 0.6 else f"unknown-{rng.randrange(9)}" for t in ids)

    edited: list[SessionState] = [SessionState()]
    for state in real[::6]:
        edited.append(
            dataclasses.replace(
                state,
                current_track="unknown-now",
                recent_tracks=mangle(state.recent_tracks),
                listened_tracks=mangle(state.listened_tracks),
                skipped_tracks=mangle(state.skipped_tracks),
                last_listened="unknown-ll",
                played=frozenset(mangle(tuple(sorted(state.played)))) | {"unknown-p"},
            )
        )
        edited.append(dataclasses.replace(state, listened_tracks=(), skipped_tracks=()))
        # Played: the popular head and many co-listened tracks, so exclusions bite.
        busy = {artifacts.track_ids[t] for t in artifacts.popular[:150].tolist()}
        edited.append(dataclasses.replace(state, played=state.played | busy))
    unknown_only = SessionState(
        position=3,
        current_track="x-1",
        recent_tracks=("x-0", "x-1"),
        listened_tracks=("x-0",),
        played=frozenset({"x-0", "x-1"}),
    )
    return real + edited + [unknown_only]


def same_context(a: StateContext, b: StateContext) -> bool:
    return (
        (a.current, a.previous, a.last_listened, a.last_skipped)
        == (b.current, b.previous, b.last_listened, b.last_skipped)
        and np.array_equal(a.played, b.played)
        and bits_equal(a.session_features, b.session_features)
        and bits_equal(a.directions, b.directions)
        and bits_equal(a.colisten, b.colisten)
    )


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (0.0 and -0.0 differ; NaN equals the same NaN)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_candidates(a: Candidates, b: Candidates) -> bool:
    return (
        a.tracks.dtype == b.tracks.dtype
        and np.array_equal(a.tracks, b.tracks)
        and np.array_equal(a.sources, b.sources)
    )


@pytest.fixture(params=[False, True], ids=["one-chunk", "small-chunks"])
def chunked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run twice: once with the batch in one chunk, once split into chunks of a few states."""
    if request.param:
        for module in (context_module, candidates_module, rows_module):
            monkeypatch.setattr(module, "MAX_BATCH_CELLS", 3_000)
    return bool(request.param)


def test_a_batch_gives_each_state_what_it_gets_alone(
    artifacts: TrackArtifacts, states: list[SessionState], chunked: bool
) -> None:
    batch = state_contexts(states, artifacts)
    alone = [state_context(s, artifacts) for s in states]
    assert len(batch) == len(states)
    assert all(same_context(a, b) for a, b in zip(batch, alone, strict=True))

    for n in (200, 37, 0):
        many = generate_candidates_many(batch, artifacts, n)
        one = [generate_candidates(c, artifacts, n) for c in alone]
        assert all(same_candidates(a, b) for a, b in zip(many, one, strict=True)), n

    tracks = [k.tracks for k in generate_candidates_many(batch, artifacts, 200)]
    rows = rows_for_many(batch, tracks, artifacts)
    one_rows = np.vstack([rows_for(c, t, artifacts) for c, t in zip(alone, tracks, strict=True)])
    assert bits_equal(rows, one_rows)
    # Any split of the batch gives the same rows.
    rng = np.random.default_rng(3)
    cut = sorted(rng.choice(np.arange(1, len(states)), size=4, replace=False).tolist())
    parts = [
        rows_for_many(batch[a:b], tracks[a:b], artifacts)
        for a, b in zip([0, *cut], [*cut, len(states)], strict=True)
    ]
    assert bits_equal(np.vstack(parts), rows)


def reference_ngram(ctx: StateContext, artifacts: TrackArtifacts) -> np.ndarray:
    """Order-3 count * 4096 + min(order-2 count, 4095), counted from the tables' keys."""
    n = artifacts.n_tracks
    scores = np.zeros(n, np.float64)
    for table, code, scale in (
        (artifacts.ngram3, ctx.context3, 4096),
        (artifacts.ngram2, ctx.context2, 1),
    ):
        if code < 0:
            continue
        for key, count in zip(table.keys.tolist(), table.counts.tolist(), strict=True):
            if key // n == code:
                scores[key % n] += count * scale if scale > 1 else min(count, 4095)
    return scores


def reference_candidates(ctx: StateContext, artifacts: TrackArtifacts, n: int) -> Candidates:
    """The one-state definition: n-gram, co-listen, kNN, two-step, taste, then popular, each
    skipping tracks played or already proposed."""
    taken = np.zeros(artifacts.n_tracks, dtype=bool)
    taken[ctx.played] = True
    picks: list[np.ndarray] = []

    def take(tracks: np.ndarray, k: int) -> None:
        fresh = tracks[~taken[tracks]][: max(k, 0)]
        taken[fresh] = True
        picks.append(fresh.astype(np.int32))

    def rest() -> int:
        return n - sum(len(p) for p in picks)

    for scores, quota in (
        (reference_ngram(ctx, artifacts), NGRAM_QUOTA),
        (ctx.colisten[:-1], COLISTEN_QUOTA),
        (ctx.knn[:-1], KNN_QUOTA),
        (ctx.two_step[:-1], TWO_STEP_QUOTA),
    ):
        nonzero = np.flatnonzero(scores > 0)
        take(nonzero[np.lexsort((nonzero, -scores[nonzero]))], min(quota, rest()))
    listened = ctx.directions[:, 1]
    direction = listened if listened.any() else ctx.directions[:, 3]
    if direction.any():
        sims = artifacts.embeddings @ direction.astype(np.float32)
        order = np.lexsort((np.arange(len(sims)), -sims))
        take(order, min(TASTE_QUOTA, rest()))
    else:
        picks.append(np.empty(0, np.int32))
    take(artifacts.popular, rest())
    kinds = [NGRAM, COLISTEN, KNN, TWO_STEP, TASTE, POPULAR]
    sources = np.repeat(np.array(kinds, np.int8), [len(p) for p in picks])
    return Candidates(np.concatenate(picks), sources)


def reference_colisten(state: SessionState, artifacts: TrackArtifacts) -> np.ndarray:
    scores = np.zeros(artifacts.n_tracks + 1)
    recent = [artifacts.index.get(t, -1) for t in state.recent_tracks][-COLISTEN_DEPTH:]
    for age, source in enumerate(reversed(recent)):
        if source >= 0:
            succ, count = artifacts.successors(source)
            scores[succ] += count * COLISTEN_DECAY**age
    return scores.astype(np.float32)


def test_batch_candidates_and_co_listen_scores_follow_the_one_state_definition(
    artifacts: TrackArtifacts, states: list[SessionState], chunked: bool
) -> None:
    contexts = state_contexts(states, artifacts)
    for n in (200, 120, 37):
        for ctx, got in zip(
            contexts, generate_candidates_many(contexts, artifacts, n), strict=True
        ):
            assert same_candidates(got, reference_candidates(ctx, artifacts, n))
    for state, ctx in zip(states, contexts, strict=True):
        assert bits_equal(ctx.colisten, reference_colisten(state, artifacts))
    # The edited states do exercise exclusions and every source.
    sources = np.concatenate([k.sources for k in generate_candidates_many(contexts, artifacts)])
    assert set(sources.tolist()) == {NGRAM, COLISTEN, KNN, TWO_STEP, TASTE, POPULAR}


def test_transition_rows_list_each_sources_row_and_the_predecessor_csr_is_the_transpose(
    artifacts: TrackArtifacts,
) -> None:
    rng = np.random.default_rng(11)
    sources = rng.integers(0, artifacts.n_tracks, 40)
    owner, entry = artifacts.transition_rows(sources)
    for i, source in enumerate(sources.tolist()):
        succ, count = artifacts.successors(source)
        assert np.array_equal(artifacts.trans_indices[entry[owner == i]], succ)
        assert np.array_equal(artifacts.trans_count[entry[owner == i]], count)
    forward = {
        (a, int(b)): float(c)
        for a in range(artifacts.n_tracks)
        for b, c in zip(*artifacts.successors(a), strict=True)
    }
    owner, entry = artifacts.transition_rows(sources, reverse=True)
    for i, target in enumerate(sources.tolist()):
        preds = artifacts.pred_indices[entry[owner == i]].tolist()
        assert preds == sorted(a for (a, b) in forward if b == target)
        counts = artifacts.pred_count[entry[owner == i]].tolist()
        assert counts == [forward[(a, target)] for a in preds]
    assert np.array_equal(artifacts.trans_log_count, np.log1p(artifacts.trans_count))


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_pair_features_equal_the_searchsorted_pair_counts_on_random_pairs(
    artifacts: TrackArtifacts, states: list[SessionState], chunked: bool
) -> None:
    """Random source tracks (some unknown) against random candidates (some unknown, some
    repeated): the dense-table lookups equal TrackArtifacts.pair_counts."""
    rng = np.random.default_rng(7)
    n_tracks = artifacts.n_tracks
    contexts, tracks = [], []
    for ctx in state_contexts(states[:30], artifacts):
        busiest = int(rng.choice(np.argsort(-artifacts.out_count)[:20]))
        picks = rng.integers(-1, n_tracks, 4)
        picks[rng.random(4) < 0.4] = busiest
        contexts.append(
            dataclasses.replace(
                ctx,
                current=int(picks[0]),
                previous=int(picks[1]),
                last_listened=int(picks[2]),
                last_skipped=int(picks[3]),
            )
        )
        succ = artifacts.successors(busiest)[0]
        cand = np.concatenate([rng.integers(-1, n_tracks, 30), rng.choice(succ, 10), [-1, -1]])
        tracks.append(cand.astype(np.int32))
    rows = rows_for_many(contexts, tracks, artifacts)
    start = 0
    for ctx, cand in zip(contexts, tracks, strict=True):
        block = rows[start : start + len(cand)]
        start += len(cand)
        c = cand.astype(np.int64)
        for name, source in [
            ("tr_current_log", ctx.current),
            ("tr_previous_log", ctx.previous),
            ("tr_last_listened_log", ctx.last_listened),
            ("tr_last_skipped_log", ctx.last_skipped),
        ]:
            count, _ = artifacts.pair_counts(np.full(len(c), source), c)
            assert bits_equal(block[:, col(name)], np.log1p(count)), name
        count, listened = artifacts.pair_counts(np.full(len(c), ctx.current), c)
        assert bits_equal(block[:, col("tr_current_listened_log")], np.log1p(listened))
        reverse, _ = artifacts.pair_counts(c, np.full(len(c), ctx.current))
        assert bits_equal(block[:, col("tr_reverse_log")], np.log1p(reverse))
        if ctx.current >= 0 and artifacts.out_count[ctx.current] > 0:
            share = count / artifacts.out_count[ctx.current]
            assert bits_equal(block[:, col("tr_current_share")], share.astype(np.float32))
    assert start == len(rows) and (rows[:, col("tr_current_log")] > 0).any()
