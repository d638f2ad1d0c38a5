"""Ranking quality next to cost: the configuration in use and cheaper ones.

For each configuration, NDCG@10 of the offline evaluation (``models.evaluate``, on held-out test
sessions of the model's own split) and the cost of ranking one track start
(``Recommender.recommend`` on the benchmark core). Cheaper configurations: fewer candidates, a
smaller model (fewer trees and leaves), and the co-listen baseline alone (no model call at all).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from devtools.bench.report import QualityPoint, Report
from devtools.bench.timing import on_bench_core, time_per_call
from devtools.bench.workload import bench_sessions
from features.candidates import generate_candidates
from features.context import state_context
from features.session import SessionState
from models.evaluate import evaluate_sessions
from models.labelled_sessions import Session, split_sessions
from models.recommender import Recommender
from nowplaying.settings import Settings

log = logging.getLogger(__name__)


def test_sessions(settings: Settings, recommender: Recommender, limit: int) -> list[Session]:
    """Held-out sessions of the model's own split (the evaluation's test part)."""
    sessions, _ = bench_sessions(settings, limit=None)
    seed = int(recommender.metadata.get("data", {}).get("split_seed", 7))
    _, _, test = split_sessions(sessions, seed=seed)
    return test[:limit]


def colisten_cost(
    recommender: Recommender, states: list[SessionState], k: int, seconds: float
) -> float:
    """Seconds per track start of the co-listen baseline as the evaluation ranks it: the same
    candidates, ordered by count(current -> candidate), then popularity, then track id."""
    art = recommender.artifacts

    def one(state: SessionState) -> object:
        ctx = state_context(state, art)
        tracks = generate_candidates(ctx, art, recommender.candidates).tracks
        current = np.full(len(tracks), ctx.current, np.int64)
        counts, _ = art.pair_counts(current, tracks.astype(np.int64))
        return tracks[np.lexsort((tracks, -art.plays[tracks], -counts))[:k]]

    return cost_per_state(one, states, seconds)


def recommend_cost(
    recommender: Recommender, states: list[SessionState], k: int, seconds: float
) -> float:
    """Seconds per track start of ``Recommender.recommend``, one state per call."""
    return cost_per_state(lambda state: recommender.recommend([state], k), states, seconds)


def cost_per_state(
    fn: Callable[[SessionState], object], states: list[SessionState], seconds: float
) -> float:
    """CPU seconds per call of ``fn``, one state per call, cycling through ``states``."""
    it = iter(states * 10_000)
    return time_per_call(lambda: fn(next(it)), seconds)


def quality_stage(
    settings: Settings,
    configs: list[tuple[str, Path, int]],
    states: list[SessionState],
    report: Report,
    quick: bool,
) -> None:
    """``configs``: (label, version folder, candidates). The first one is the one in use."""
    seconds = 0.2 if quick else 1.5
    limit = 40 if quick else 400
    sessions: list[Session] | None = None
    for label, version_dir, candidates in configs:
        rec = Recommender.load(
            version_dir, intra_op_threads=settings.ort_intra_op_threads, candidates=candidates
        )
        # Timed before the evaluation (whose allocations would otherwise be paid in the first
        # configuration's figure), one track start per call as at low rates, over many states.
        with on_bench_core():
            per_start = recommend_cost(rec, states, settings.top_k, seconds)
        if sessions is None:
            sessions = test_sessions(settings, rec, limit)
        evaluation = evaluate_sessions(rec, sessions)
        report.quality.append(
            QualityPoint(
                label, evaluation.ndcg_at_10.get("ranker"), per_start * 1000, 1 / per_start
            )
        )
        if label == configs[0][0]:
            with on_bench_core():
                base = colisten_cost(rec, states, settings.top_k, seconds)
            report.quality.append(
                QualityPoint(
                    "co-listen baseline alone (no ranker)",
                    evaluation.ndcg_at_10.get("colisten"),
                    base * 1000,
                    1 / base,
                )
            )
    if sessions is not None:
        report.notes.append(
            f"quality: NDCG@10 on {len(sessions)} held-out test sessions of the model's split"
        )
