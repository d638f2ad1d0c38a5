"""The ranker's training rows: out of fold, built in parallel processes.

Each of ``TrainConfig.folds`` parts of the training sessions is featurised with artifacts
fitted on the OTHER parts (:func:`out_of_fold_rows`), and its queries are scored by the sequence
model that did not see their session (:class:`models.train_sequence.HeldOutSequence`).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from features.artifacts import F32, TrackArtifacts, fit_artifacts
from models.labelled_sessions import Session
from models.ranking_queries import Query, RankingData, session_queries, training_data
from models.recommender import SequenceScores
from models.sequence.config import SequenceConfig
from models.train_sequence import HeldOutSequence, SequenceModels

if TYPE_CHECKING:
    from models.train import TrainConfig


def queries_of(sessions: Sequence[Session], progress: bool, desc: str) -> list[Query]:
    bar = tqdm(sessions, desc=desc, unit="session", disable=not progress, leave=False)
    return [q for s in bar for q in session_queries(s)]


def fold_of(session_id: str, folds: int, seed: int) -> int:
    digest = hashlib.blake2b(f"fold:{seed}:{session_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % folds


def out_of_fold_rows(
    train: Sequence[Session],
    cfg: TrainConfig,
    progress: bool,
    sequence: SequenceModels | None = None,
    serving: TrackArtifacts | None = None,
) -> RankingData:
    """Training rows; each fold's queries are featurised with artifacts fitted without it, and
    scored by the sequence model that did not see their session (``sequence``, trained with the
    ``serving`` artifacts' tracks).

    Folds are built in parallel worker processes (forked, so the sessions are shared, not
    copied) when more than one core is available; the result does not depend on it.
    """
    if sequence is not None and serving is None:
        raise ValueError("the sequence models need the serving artifacts")
    if cfg.folds <= 1:
        artifacts = fit_artifacts(train, seed=cfg.seed)
        return training_data(
            queries_of(train, progress, "training queries"),
            artifacts,
            negatives=cfg.negatives,
            candidates=cfg.candidates,
            seed=cfg.seed,
            per_session=cfg.queries_per_session,
            sequence=held_out_scores(sequence, serving, artifacts),
            hard_negatives=cfg.hard_negatives,
            every_next=cfg.every_next,
            negative_pool=cfg.negative_pool,
        )
    workers = min(cfg.workers or os.cpu_count() or 1, cfg.folds)
    bar = tqdm(total=cfg.folds, desc="training rows", unit="fold", disable=not progress)
    global _FOLD_INPUT  # noqa: PLW0603 - read-only input of the forked fold workers
    _FOLD_INPUT = (train, cfg, sequence, serving)
    try:
        if workers > 1:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                parts = [_tick(bar, p) for p in pool.map(_fold_rows, range(cfg.folds))]
        else:
            parts = [_tick(bar, _fold_rows(fold)) for fold in range(cfg.folds)]
    finally:
        _FOLD_INPUT = None
        bar.close()
    return concat_ranking(parts)


_FOLD_INPUT: (
    tuple[Sequence[Session], TrainConfig, SequenceModels | None, TrackArtifacts | None] | None
) = None


def _fold_rows(fold: int) -> RankingData:
    assert _FOLD_INPUT is not None
    train, cfg, sequence, serving = _FOLD_INPUT
    inside = [s for s in train if fold_of(s.session_id, cfg.folds, cfg.seed) == fold]
    outside = [s for s in train if fold_of(s.session_id, cfg.folds, cfg.seed) != fold]
    artifacts = fit_artifacts(outside, seed=cfg.seed)
    return training_data(
        [q for s in inside for q in session_queries(s)],
        artifacts,
        negatives=cfg.negatives,
        candidates=cfg.candidates,
        seed=cfg.seed + fold,
        per_session=cfg.queries_per_session,
        sequence=held_out_scores(sequence, serving, artifacts),
        hard_negatives=cfg.hard_negatives,
        every_next=cfg.every_next,
        negative_pool=cfg.negative_pool,
    )


def held_out_scores(
    sequence: SequenceModels | None, serving: TrackArtifacts | None, fold: TrackArtifacts
) -> Callable[[Sequence[Query]], F32] | None:
    if sequence is None or serving is None:
        return None
    held = HeldOutSequence(sequence, serving)
    return lambda chunk: held.scores([q.state for q in chunk], [q.session_id for q in chunk], fold)


def serving_scores(
    scorer: SequenceScores | None, artifacts: TrackArtifacts
) -> Callable[[Sequence[Query]], F32] | None:
    if scorer is None:
        return None
    return lambda chunk: scorer.scores([q.state for q in chunk], artifacts)


def sequence_config(cfg: TrainConfig) -> SequenceConfig:
    base = SequenceConfig()
    return replace(
        base,
        epochs=cfg.sequence_epochs or base.epochs,
        learning_rate=cfg.sequence_learning_rate or base.learning_rate,
    )


def _tick(bar: tqdm, value: RankingData) -> RankingData:
    bar.update(1)
    return value


def concat_ranking(parts: Sequence[RankingData]) -> RankingData:
    return RankingData(
        np.concatenate([p.rows for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.groups for p in parts]),
        np.concatenate([p.tracks for p in parts]),
        [k for p in parts for k in p.keys],
    )
