"""The WSDM evaluation model: LightGBM binary over :mod:`models.skip.task_features`.

A separate, offline model next to the served skip-risk model (``skip.onnx``): its features
(the session's length, the second half's known tracks, the codes of the last known outcomes)
are the task's and the stream does not hold them when it rates candidates, so the worker keeps
the served model and never loads this one. Trained by :func:`models.skip.train.add_skip_model`
(the same path as the served model, with ``nowplaying train --skip-task-model``) and by
``python -m models.skip.train``:

1. Training rows out of fold: the training sessions' folds (:func:`models.skip.train.fold_of`)
   get their rows from :class:`TaskStats` and embeddings fitted on the other folds.
2. ``objective="binary"``, early-stopped on the validation log loss (validation rows from stats
   fitted on the whole training split, with the version's serving embeddings).
3. The threshold with the best validation MAA. Files: ``skip_task_lightgbm.txt``,
   ``skip_task.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from features.artifacts import TrackArtifacts, fit_artifacts
from models.labelled_sessions import Session
from models.skip.accuracy import best_threshold
from models.skip.params import binary_params
from models.skip.task_features import (
    F64,
    TASK_FEATURE_NAMES,
    TaskStats,
    fit_task_stats,
    task_matrix,
)

TASK_LIGHTGBM_FILE: Final = "skip_task_lightgbm.txt"
TASK_METADATA_FILE: Final = "skip_task.json"


@dataclass(frozen=True)
class TaskConfig:
    trees: int = 1000
    leaves: int = 31
    learning_rate: float = 0.05
    min_child_samples: int = 100
    folds: int = 4
    early_stopping_rounds: int = 50
    seed: int = 7
    threads: int = 1


def embeddings_of(artifacts: TrackArtifacts) -> dict[str, F64]:
    return {
        t: artifacts.embeddings[i].astype(np.float64) for i, t in enumerate(artifacts.track_ids)
    }


@dataclass(frozen=True)
class TaskModel:
    booster: lgb.Booster
    threshold: float

    def predict(
        self, sessions: Sequence[Session], train: Sequence[Session], artifacts: TrackArtifacts
    ) -> NDArray[np.bool_]:
        """Predicted early skips of every second-half play of ``sessions`` (in order),
        with statistics of ``train`` (the version's training split)."""
        return self.probabilities(sessions, train, artifacts) >= self.threshold

    def probabilities(
        self, sessions: Sequence[Session], train: Sequence[Session], artifacts: TrackArtifacts
    ) -> NDArray[np.float64]:
        """Early-skip probabilities of every second-half play of ``sessions`` (in order)."""
        stats = fit_task_stats(train, embeddings_of(artifacts))
        rows, _, _ = task_matrix(sessions, stats)
        return np.asarray(self.booster.predict(rows, num_threads=1), np.float64)

    @classmethod
    def load(cls, version_dir: Path) -> TaskModel | None:
        meta_path = version_dir / TASK_METADATA_FILE
        if not meta_path.exists():
            return None
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        if tuple(metadata["feature_names"]) != TASK_FEATURE_NAMES:
            return None
        booster = lgb.Booster(model_file=str(version_dir / TASK_LIGHTGBM_FILE))
        return cls(booster, float(metadata["threshold"]))


def out_of_fold_task_rows(
    train: Sequence[Session], cfg: TaskConfig
) -> tuple[F64, NDArray[np.bool_]]:
    from models.skip.train import fold_of  # noqa: PLC0415 (train imports this module)

    if cfg.folds <= 1:
        r, lab, _ = task_matrix(train, _stats(train, cfg.seed))
        return r, lab
    rows, labels = [], []
    for fold in range(cfg.folds):
        inside = [s for s in train if fold_of(s.session_id, cfg.folds, cfg.seed) == fold]
        outside = [s for s in train if fold_of(s.session_id, cfg.folds, cfg.seed) != fold]
        stats = _stats(outside, cfg.seed)
        r, lab, _ = task_matrix(inside, stats)
        rows.append(r)
        labels.append(lab)
    return np.concatenate(rows), np.concatenate(labels)


def _stats(sessions: Sequence[Session], seed: int) -> TaskStats:
    return fit_task_stats(sessions, embeddings_of(fit_artifacts(sessions, seed=seed)))


def fit_task_booster(
    rows: F64,
    labels: NDArray[np.bool_],
    val_rows: F64,
    val_labels: NDArray[np.bool_],
    cfg: TaskConfig,
    *,
    feature_names: Sequence[str] = TASK_FEATURE_NAMES,
) -> lgb.Booster:
    """LightGBM binary on the rows, early-stopped on the validation log loss (when there are
    validation rows), cut at its best iteration."""
    params = binary_params(cfg, feature_fraction=0.8)
    train_set = lgb.Dataset(rows, labels, feature_name=list(feature_names))
    valid = [lgb.Dataset(val_rows, val_labels, reference=train_set)] if len(val_rows) else []
    stop: list[Callable[..., Any]] = []
    if valid:
        stop.append(lgb.early_stopping(cfg.early_stopping_rounds, verbose=False))
    booster = lgb.train(params, train_set, cfg.trees, valid_sets=valid, callbacks=stop)
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def train_task_model(
    train: Sequence[Session],
    validation: Sequence[Session],
    artifacts: TrackArtifacts,
    version_dir: Path,
    config: TaskConfig | None = None,
) -> dict[str, Any]:
    cfg = config or TaskConfig()
    rows, labels = out_of_fold_task_rows(train, cfg)
    val_rows, val_labels, val_sessions = task_matrix(
        validation, fit_task_stats(train, embeddings_of(artifacts))
    )
    booster = fit_task_booster(rows, labels, val_rows, val_labels, cfg)
    threshold, val_maa = 0.5, 0.0
    if len(val_rows):
        prob = np.asarray(booster.predict(val_rows, num_threads=1), np.float64)
        threshold, val_maa = best_threshold(prob, val_sessions, val_labels)
    booster.save_model(str(version_dir / TASK_LIGHTGBM_FILE))
    metadata: dict[str, Any] = {
        "feature_names": list(TASK_FEATURE_NAMES),
        "model": {
            "type": "lightgbm.Booster",
            "objective": "binary",
            "best_iteration": booster.current_iteration(),
        },
        "served": False,
        "threshold": threshold,
        "training": {"rows": len(rows), "skip_share": float(labels.mean()) if len(labels) else 0},
        "validation": {"rows": len(val_rows), "maa_half": val_maa},
    }
    (version_dir / TASK_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
