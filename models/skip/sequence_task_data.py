"""The WSDM skip task as padded arrays for the sequence learner (:mod:`models.skip.sequence_task`).

One row per task session (``0 < len // 2 < len``): the first half's plays (encoder steps: track,
outcome code, track statistics) and the second half's plays (decoder steps: track, track
statistics, the task model's 40 columns of :mod:`models.skip.task_features`, the label: skipped
early). Track statistics and the task columns come from :class:`TaskStats` fitted on TRAINING
sessions only: out of fold for the training rows (the folds of :func:`models.skip.train.fold_of`,
embeddings by ``fit_artifacts`` on the other folds), on the whole training split for validation
and test rows. Track ids (the learned embedding) are indexed by :class:`TrackIndex`, built from
the training split only; tracks it does not know get id 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from features.artifacts import fit_artifacts
from models.labelled_sessions import Session
from models.skip.task_features import CODE, N_TASK_FEATURES, TaskStats, fit_task_stats, task_rows
from models.skip.task_model import embeddings_of

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
#: Plays per half at most (MSSD sessions hold 10-20 plays).
MAX_HALF: Final = 10
#: Per-track statistics of a step: smoothed early-skip rate, log plays, early rate in second
#: halves, then the track's embedding.
N_TRACK_STATS: Final = 3
#: The sequence learner's files in a version folder (:mod:`models.skip.sequence_task`).
SEQUENCE_WEIGHTS_FILE: Final = "skip_sequence.npz"
SEQUENCE_METADATA_FILE: Final = "skip_sequence.json"


@dataclass(frozen=True)
class TrackIndex:
    """Track id -> 1..T (0: unknown or padding), from training sessions only."""

    ids: dict[str, int]

    @classmethod
    def of(cls, sessions: Sequence[Session]) -> TrackIndex:
        tracks = sorted({p.track_id for s in sessions for p in s.plays})
        return cls({t: i + 1 for i, t in enumerate(tracks)})

    @property
    def size(self) -> int:
        return len(self.ids) + 1

    def get(self, track_id: str) -> int:
        return self.ids.get(track_id, 0)


@dataclass(frozen=True)
class TaskArrays:
    """``S`` sessions; ``E = D = MAX_HALF`` steps; padded steps have mask 0."""

    enc_tracks: I32  # [S, E]
    enc_codes: I32  # [S, E] outcome code + 1 (0: padding)
    enc_feats: F32  # [S, E, F_enc]
    enc_mask: F32  # [S, E]
    dec_tracks: I32  # [S, D]
    dec_feats: F32  # [S, D, F_dec]
    dec_mask: F32  # [S, D]
    labels: F32  # [S, D]
    session_ids: tuple[str, ...]

    @property
    def sessions(self) -> int:
        return len(self.session_ids)

    def take(self, picked: NDArray[np.int64]) -> TaskArrays:
        return TaskArrays(
            self.enc_tracks[picked],
            self.enc_codes[picked],
            self.enc_feats[picked],
            self.enc_mask[picked],
            self.dec_tracks[picked],
            self.dec_feats[picked],
            self.dec_mask[picked],
            self.labels[picked],
            tuple(self.session_ids[i] for i in picked),
        )

    def flat(self, values: NDArray[np.floating]) -> NDArray[np.floating]:
        """``values [S, D]`` of the real decoder steps, in session and play order."""
        return np.asarray(values)[self.dec_mask > 0]

    def session_numbers(self) -> NDArray[np.int64]:
        return np.nonzero(self.dec_mask > 0)[0].astype(np.int64)


def is_task(session: Session) -> bool:
    return 0 < len(session.plays) // 2 < len(session.plays)


def _track_stats(stats: TaskStats, track_id: str) -> list[float]:
    i = stats.idx(track_id)
    return [
        float(stats.early[i]),
        float(np.log1p(stats.plays[i]) / 5.0),
        float(stats.early_second[i]),
        *stats.embeddings[i].tolist(),
    ]


def task_arrays(sessions: Sequence[Session], stats: TaskStats, index: TrackIndex) -> TaskArrays:
    """The arrays of the task sessions among ``sessions`` (others left out), with ``stats``."""
    tasks = [s for s in sessions if is_task(s)]
    dim = stats.embeddings.shape[1]
    f_enc = N_TRACK_STATS + dim + 2
    f_dec = N_TRACK_STATS + dim + N_TASK_FEATURES
    s_n = len(tasks)
    out = TaskArrays(
        np.zeros((s_n, MAX_HALF), np.int32),
        np.zeros((s_n, MAX_HALF), np.int32),
        np.zeros((s_n, MAX_HALF, f_enc), np.float32),
        np.zeros((s_n, MAX_HALF), np.float32),
        np.zeros((s_n, MAX_HALF), np.int32),
        np.zeros((s_n, MAX_HALF, f_dec), np.float32),
        np.zeros((s_n, MAX_HALF), np.float32),
        np.zeros((s_n, MAX_HALF), np.float32),
        tuple(s.session_id for s in tasks),
    )
    for k, s in enumerate(tasks):
        n = len(s.plays)
        h = n // 2
        first = s.plays[:h][-MAX_HALF:]
        for t, p in enumerate(first):
            out.enc_tracks[k, t] = index.get(p.track_id)
            out.enc_codes[k, t] = CODE[p.outcome] + 1
            out.enc_feats[k, t] = [*_track_stats(stats, p.track_id), t / MAX_HALF, h / MAX_HALF]
            out.enc_mask[k, t] = 1.0
        rows, labels = task_rows(s, stats)
        for t, p in enumerate(s.plays[h:][:MAX_HALF]):
            out.dec_tracks[k, t] = index.get(p.track_id)
            out.dec_feats[k, t] = [*_track_stats(stats, p.track_id), *rows[t].tolist()]
            out.dec_mask[k, t] = 1.0
            out.labels[k, t] = float(labels[t])
    return out


def out_of_fold_arrays(
    train: Sequence[Session], index: TrackIndex, folds: int, seed: int
) -> TaskArrays:
    """The training sessions' arrays, each fold's with statistics of the other folds."""
    from models.skip.train import fold_of  # noqa: PLC0415 (train imports the task model)

    parts = []
    for fold in range(folds):
        inside = [s for s in train if fold_of(s.session_id, folds, seed) == fold]
        outside = [s for s in train if fold_of(s.session_id, folds, seed) != fold]
        stats = fit_task_stats(outside, embeddings_of(fit_artifacts(outside, seed=seed)))
        parts.append(task_arrays(inside, stats, index))
    return concatenate(parts)


def concatenate(parts: Sequence[TaskArrays]) -> TaskArrays:
    arrays = {f: np.concatenate([getattr(p, f) for p in parts]) for f in _ARRAY_FIELDS}
    return TaskArrays(**arrays, session_ids=tuple(i for p in parts for i in p.session_ids))


_ARRAY_FIELDS: Final = (
    "enc_tracks",
    "enc_codes",
    "enc_feats",
    "enc_mask",
    "dec_tracks",
    "dec_feats",
    "dec_mask",
    "labels",
)
