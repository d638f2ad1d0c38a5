"""The sequence learner and its ensemble with the WSDM evaluation model, in a version folder.

:func:`add_sequence_task_model` (``python -m models.skip.train VERSION_DIR --sequence``) trains
:mod:`models.skip.sequence_task` on the version's training split (selected on validation) and,
when the version has the LightGBM WSDM evaluation model (:mod:`models.skip.task_model`), the
ensemble: the mean of both probabilities, its threshold chosen on validation. Both are offline
evaluation models (``"served": false``); ``nowplaying evaluate --skip`` scores them as
``sequence_model`` and ``ensemble`` (:func:`offline_predictions`). jax is imported only
when a sequence model is trained or found.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from features.artifacts import TrackArtifacts
from models.labelled_sessions import Session
from models.skip import accuracy
from models.skip.accuracy import session_accuracies
from models.skip.sequence_task_data import (
    N_TRACK_STATS,
    SEQUENCE_METADATA_FILE,
    TaskArrays,
    TrackIndex,
    task_arrays,
)
from models.skip.task_features import N_TASK_FEATURES, fit_task_stats
from models.skip.task_model import TaskModel, embeddings_of

if TYPE_CHECKING:
    from models.skip.sequence_task import SequenceTaskConfig

SEQUENCE_MODEL: Final = "sequence_model"
ENSEMBLE: Final = "ensemble"
Predict = Callable[[Sequence[Session]], dict[str, NDArray[np.bool_]]]


def task_probabilities(task: TaskModel, arrays: TaskArrays) -> NDArray[np.float64]:
    """The LightGBM task model's probabilities of the arrays' real second-half steps (their
    task columns are the model's rows)."""
    width = arrays.dec_feats.shape[2]
    first = width - N_TASK_FEATURES
    assert first >= N_TRACK_STATS
    rows = arrays.flat(arrays.dec_feats)[:, first:].astype(np.float64)
    return np.asarray(task.booster.predict(rows, num_threads=1), np.float64)


def maa_of(arrays: TaskArrays, prob: NDArray[np.float64], threshold: float) -> float:
    """MAA of the arrays' real second-half steps predicted skipped when ``prob >= threshold``."""
    actual = arrays.flat(arrays.labels) > 0.5
    aa, _ = session_accuracies(arrays.session_numbers(), prob >= threshold, actual)
    return float(aa.mean())


def best_threshold(arrays: TaskArrays, prob: NDArray[np.float64]) -> tuple[float, float]:
    """The threshold of :data:`~models.skip.accuracy.THRESHOLDS` with the best MAA of the
    arrays' real second-half steps, and that MAA."""
    actual = arrays.flat(arrays.labels) > 0.5
    return accuracy.best_threshold(prob, arrays.session_numbers(), actual)


def add_sequence_task_model(
    train: Sequence[Session],
    validation: Sequence[Session],
    artifacts: TrackArtifacts,
    version_dir: Path,
    config: SequenceTaskConfig | None = None,
) -> dict[str, Any]:
    from models.skip.sequence_task import train_sequence_task  # noqa: PLC0415 (jax)

    stats = fit_task_stats(train, embeddings_of(artifacts))
    model = train_sequence_task(train, validation, stats, version_dir, config)
    val = task_arrays(validation, stats, TrackIndex.of(train))
    figures: dict[str, Any] = {"sequence_model": model.stats["validation_maa"]}
    task = TaskModel.load(version_dir)
    meta_path = version_dir / SEQUENCE_METADATA_FILE
    metadata: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    if task is not None and val.sessions:
        seq_prob, task_prob = model.probabilities(val), task_probabilities(task, val)
        figures["task_model"] = maa_of(val, task_prob, task.threshold)
        threshold, maa = best_threshold(val, (seq_prob + task_prob) / 2)
        figures["ensemble"] = maa
        metadata["ensemble"] = {"threshold": threshold, "of": [SEQUENCE_MODEL, "task_model"]}
    metadata["validation_figures"] = figures
    meta_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return metadata


def offline_predictions(
    version_dir: Path, train: Sequence[Session], artifacts: TrackArtifacts
) -> Predict | None:
    """The sequence model's (and the ensemble's) predictions of the tasks' second halves, when
    the version has the sequence model; statistics of ``train`` (the version's split)."""
    if not (version_dir / SEQUENCE_METADATA_FILE).exists():
        return None
    from models.skip.sequence_task import SequenceTaskModel  # noqa: PLC0415 (jax)

    model = SequenceTaskModel.load(version_dir)
    if model is None:
        return None
    metadata = json.loads((version_dir / SEQUENCE_METADATA_FILE).read_text(encoding="utf-8"))
    task = TaskModel.load(version_dir)
    ensemble = metadata.get("ensemble")

    def predict(sessions: Sequence[Session]) -> dict[str, NDArray[np.bool_]]:
        stats = fit_task_stats(train, embeddings_of(artifacts))
        arrays = task_arrays(sessions, stats, TrackIndex.of(train))
        prob = model.probabilities(arrays)
        out = {SEQUENCE_MODEL: prob >= model.threshold}
        if task is not None and ensemble is not None:
            mean = (prob + task_probabilities(task, arrays)) / 2
            out[ENSEMBLE] = mean >= float(ensemble["threshold"])
        return out

    return predict
