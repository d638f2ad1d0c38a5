"""The sequence model inside ``nowplaying train``: trained out of fold for the ranker's rows.

A sequence model must never score queries of sessions it was trained on (its scores are ranker
features: a model that saw the session would hand the ranker its own next track). So
:func:`train_sequence_models` fits THREE models on the training split, with the serving
artifacts' track vocabulary:

* two on half of the training sessions each (halves by a seeded hash of the session id,
  :func:`models.training_rows.fold_of` with 2 folds); each scores the training queries of the
  OTHER half;
* one on the whole training split, saved as ``sequence.onnx`` in the version folder: it scores
  the validation queries (early stopping) and everything served.

The models are trained in child processes started by a fork server (this process never
imports jax, and a child is never forked from a process whose XLA or LightGBM threads run: such
a child can deadlock), all three at once; each is
saved as ONNX and only the ONNX graphs are used afterwards
(:class:`models.sequence.scorer.SequenceScorer`, what the worker runs).

:class:`HeldOutSequence` gives the fold workers the scores of a chunk of training queries, each
from the half model that did not see its session, with the columns mapped onto the fold's own
artifacts (whose tracks are a subset of the serving artifacts').
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from features.artifacts import F32, TrackArtifacts
from features.session import SessionState
from models.labelled_sessions import Session
from models.recommender import SEQUENCE_FILE, SequenceScores
from models.sequence.config import SequenceConfig
from models.sequence.scorer import SequenceScorer

#: The half models of the training rows.
SEQUENCE_HALVES: Final = 2


@dataclass(frozen=True)
class SequenceModels:
    serving: Path  # the version folder's sequence.onnx
    halves: tuple[Path, ...]  # model k was trained WITHOUT the sessions of half k
    half_seed: int
    stats: dict[str, Any]


def half_of(session_id: str, seed: int) -> int:
    from models.training_rows import fold_of  # noqa: PLC0415 - it imports this module

    return fold_of(session_id, SEQUENCE_HALVES, seed + 1)


def sessions_for(train: Sequence[Session], half: int, seed: int) -> list[Session]:
    """The sessions model ``half`` trains on: all (``half`` -1) or all but half ``half``."""
    return [s for s in train if half < 0 or half_of(s.session_id, seed) != half]


_TASK_INPUT: tuple[Sequence[Session], TrackArtifacts, SequenceConfig, int] | None = None


def _set_input(
    train: Sequence[Session], artifacts: TrackArtifacts, config: SequenceConfig, seed: int
) -> None:
    """A child's initializer: the input every task of the child reads."""
    global _TASK_INPUT  # noqa: PLW0603 - read-only input of this child's tasks
    _TASK_INPUT = (train, artifacts, config, seed)


def _train_one(task: tuple[int, str]) -> dict[str, Any]:
    """Train one model (``half`` -1: all sessions; k: all but half k) and save it as ONNX."""
    from models.sequence.train import train_sequence_model  # noqa: PLC0415 - jax, child only

    assert _TASK_INPUT is not None
    train, artifacts, config, seed = _TASK_INPUT
    half, path = task
    sessions = sessions_for(train, half, seed)
    model = train_sequence_model(sessions, artifacts, seed=seed + half + 1, config=config)
    model.save_onnx(Path(path))
    return {"sessions": len(sessions), **model.stats}


def train_sequence_models(
    train: Sequence[Session],
    artifacts: TrackArtifacts,
    version_dir: Path,
    scratch: Path,
    *,
    seed: int,
    config: SequenceConfig | None = None,
    workers: int = 3,
) -> SequenceModels:
    """The serving model (``version_dir / sequence.onnx``) and the half models (in
    ``scratch``), trained in child processes (one per model, from a fork server)."""
    cfg = config or SequenceConfig()
    serving = version_dir / SEQUENCE_FILE
    halves = tuple(scratch / f"sequence-half{k}.onnx" for k in range(SEQUENCE_HALVES))
    tasks = [(-1, str(serving)), *((k, str(p)) for k, p in enumerate(halves))]
    # Children come from a fork server, never forked from this process: a process forked
    # while XLA's or LightGBM's threads run (an earlier training in the same process) can
    # deadlock in the child.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        max(1, min(workers, len(tasks))),
        mp_context=context,
        initializer=_set_input,
        initargs=(list(train), artifacts, cfg, seed),
    ) as pool:
        stats = list(pool.map(_train_one, tasks))
    return SequenceModels(
        serving,
        halves,
        seed,
        {"serving": stats[0], "halves": stats[1:], "config": cfg.to_json()},
    )


class HeldOutSequence:
    """Scores of training queries from the half model that did not see their session."""

    def __init__(self, models: SequenceModels, full: TrackArtifacts) -> None:
        self._models = models
        self._full = full
        self._scorers: list[SequenceScores] | None = None  # opened on first use (per process)

    def scores(
        self, states: Sequence[SessionState], session_ids: Sequence[str], fold: TrackArtifacts
    ) -> F32:
        """``[len(states), fold.n_tracks]``: column j is the score of ``fold.track_ids[j]``."""
        if self._scorers is None:
            self._scorers = [SequenceScorer.load(p) for p in self._models.halves]
        columns = self._full.indices_of(fold.track_ids)
        if (columns < 0).any():
            raise ValueError("the fold's artifacts hold tracks the serving artifacts do not")
        halves = np.array([half_of(s, self._models.half_seed) for s in session_ids], np.int64)
        out = np.empty((len(states), fold.n_tracks), np.float32)
        for half, scorer in enumerate(self._scorers):
            rows = np.flatnonzero(halves == half)
            if len(rows):
                scores = scorer.scores([states[i] for i in rows.tolist()], self._full)
                out[rows] = scores[:, columns]
        return out
