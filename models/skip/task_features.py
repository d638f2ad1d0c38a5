"""Features of the WSDM Cup 2019 task itself (the first half's outcomes known, every track of the
second half predicted), for the separate WSDM evaluation model (:mod:`models.skip.task_model`).

The stream's skip-risk model rates the ranker's candidate rows (what the worker holds); this
model sees what the offline task gives and the stream does not keep: the session's length, the
distance of the target from the last known outcome, the codes of the last known outcomes, the
known track just before the target, and track statistics conditioned on the task's shape
(:class:`TaskStats`, fitted on training sessions only; out of fold for the training rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from features.session import Outcome
from models.labelled_sessions import Session

F64 = NDArray[np.float64]
#: Outcome codes: listened 0, skipped late 1, skipped early 2; 3 where there is none.
CODE: Final[dict[Outcome, int]] = {"listened": 0, "skip_late": 1, "skip_early": 2}
NONE_CODE: Final = 3
#: Pseudo-plays of the smoothing towards the (conditioned) global rate.
PRIOR: Final = 10.0
#: Position buckets: second-half offset 0, 1, 2-3, 4-7, 8+.
_BUCKETS: Final = np.array([0, 1, 2, 4, 8])
HISTORY: Final = 5

TASK_FEATURE_NAMES: Final[tuple[str, ...]] = (
    "offset",  # t - half: distance from the last known outcome
    "position",
    "length",
    "relative_position",  # t / length
    "half",
    *(f"last_{k}_code" for k in range(1, HISTORY + 1)),
    "trailing_run",  # length of the trailing run of the last known outcome
    "half_early_rate",
    "half_late_rate",
    "half_listen_rate",
    "last3_early_rate",
    "half_weighted_early",  # recency-weighted (0.7^age) early-skip share of the first half
    "track_log_plays",
    "track_early_rate",
    "track_early_after_last",  # the track's early-skip rate after the last known code
    "track_early_in_bucket",  # ... at this second-half offset bucket
    "track_early_second_half",
    "prev_track_early_rate",  # the play before the target (its track known)
    "transition_early_rate",  # target skipped early right after the previous track
    "transition_log_count",
    "prev_is_known",  # the previous play's outcome is known (offset 0)
    "played_before_code",  # outcome of the track's last play in the first half, or none
    "played_before_in_second",  # the track already started in the second half
    "sim_early_max",
    "sim_early_mean",
    "sim_listen_max",
    "sim_listen_mean",
    "sim_prev",
    "track_rate_minus_half",  # track_early_rate - half_early_rate
    "second_mean_track_early",  # mean track early-skip rate of the whole second half (known)
    "second_so_far_track_early",  # ... of its plays from the half to the target
    "next_track_early_rate",  # the play after the target (its track known), or the prior
    "next_transition_log_count",  # target -> next track in training
    "next_transition_early_rate",  # next track skipped early right after the target
    "second_repeat_share",  # share of second-half plays whose track was in the first half
    "distinct_share",  # distinct tracks / plays in the session
)
N_TASK_FEATURES: Final = len(TASK_FEATURE_NAMES)


def bucket_of(offset: int) -> int:
    return int(np.searchsorted(_BUCKETS, offset, side="right") - 1)


@dataclass(frozen=True)
class TaskStats:
    """Track statistics of training sessions (their half split as the task's)."""

    index: dict[str, int]
    plays: F64  # [T + 1]; last row: unknown tracks
    early: F64  # [T + 1] smoothed early-skip rate
    early_after: F64  # [T + 1, 4] by the previous play's code
    early_bucket: F64  # [T + 1, 5] by second-half offset bucket (first-half plays: bucket 0)
    early_second: F64  # [T + 1] in the second half of sessions
    transitions: dict[int, tuple[float, float]]  # a * (T + 1) + b -> (count, early count)
    prior: float
    embeddings: F64  # [T + 1, D] unit rows (zero rows: unknown)

    def idx(self, track_id: str) -> int:
        return self.index.get(track_id, len(self.index))

    def transition(self, a: int, b: int) -> tuple[float, float]:
        return self.transitions.get(a * (len(self.index) + 1) + b, (0.0, 0.0))


def _smooth(hits: F64, counts: F64, prior: F64 | float) -> F64:
    return np.asarray((hits + PRIOR * prior) / (counts + PRIOR), np.float64)


def fit_task_stats(sessions: Sequence[Session], embeddings: dict[str, F64]) -> TaskStats:
    """``embeddings``: track id -> unit vector (the version's artifacts, same training data)."""
    track_ids = sorted({p.track_id for s in sessions for p in s.plays})
    index = {t: i for i, t in enumerate(track_ids)}
    n = len(track_ids) + 1
    plays, early, second, second_early = (np.zeros(n) for _ in range(4))
    after, after_early = np.zeros((n, 4)), np.zeros((n, 4))
    bucket, bucket_early = np.zeros((n, 5)), np.zeros((n, 5))
    transitions: dict[int, tuple[float, float]] = {}
    for s in sessions:
        h = len(s.plays) // 2
        prev_track, prev_code = -1, NONE_CODE
        for t, p in enumerate(s.plays):
            i, e = index[p.track_id], float(p.outcome == "skip_early")
            plays[i] += 1
            early[i] += e
            after[i, prev_code] += 1
            after_early[i, prev_code] += e
            b = bucket_of(t - h) if t >= h else 0
            bucket[i, b] += 1
            bucket_early[i, b] += e
            if t >= h:
                second[i] += 1
                second_early[i] += e
            if prev_track >= 0:
                key = prev_track * n + i
                c, ce = transitions.get(key, (0.0, 0.0))
                transitions[key] = (c + 1, ce + e)
            prev_track, prev_code = i, CODE[p.outcome]
    prior = float(early.sum() / max(plays.sum(), 1.0))
    prior_after = after_early.sum(0) / np.maximum(after.sum(0), 1.0)
    prior_bucket = bucket_early.sum(0) / np.maximum(bucket.sum(0), 1.0)
    prior_second = float(second_early.sum() / max(second.sum(), 1.0))
    dim = len(next(iter(embeddings.values()))) if embeddings else 1
    table = np.zeros((n, dim))
    for track_id, i in index.items():
        if track_id in embeddings:
            table[i] = embeddings[track_id]
    return TaskStats(
        index=index,
        plays=plays,
        early=_smooth(early, plays, prior),
        early_after=_smooth(after_early, after, prior_after[None, :]),
        early_bucket=_smooth(bucket_early, bucket, prior_bucket[None, :]),
        early_second=_smooth(second_early, second, prior_second),
        transitions=transitions,
        prior=prior,
        embeddings=table,
    )


def task_rows(session: Session, stats: TaskStats) -> tuple[F64, NDArray[np.bool_]]:
    """The rows ``[second-half plays, N_TASK_FEATURES]`` of one session's task, and the labels
    (skipped early) of those plays, in play order."""
    plays = session.plays
    n, h = len(plays), len(plays) // 2
    if h == 0 or h >= n:
        return np.empty((0, N_TASK_FEATURES)), np.empty(0, bool)
    codes = [CODE[p.outcome] for p in plays[:h]]
    idx = np.array([stats.idx(p.track_id) for p in plays])
    known_early = np.array([c == 2 for c in codes], np.float64)
    last = codes[-1]
    run = 1
    while run < h and codes[-1 - run] == last:
        run += 1
    weights = 0.7 ** np.arange(h)[::-1]
    history = [codes[-k] if k <= h else NONE_CODE for k in range(1, HISTORY + 1)]
    session_part = [
        *history,
        run,
        known_early.mean(),
        np.mean([c == 1 for c in codes]),
        np.mean([c == 0 for c in codes]),
        known_early[-3:].mean(),
        float((weights * known_early).sum() / weights.sum()),
    ]
    emb = stats.embeddings
    first = emb[idx[:h]]
    early_vecs, listen_vecs = first[known_early == 1], first[known_early == 0]
    first_code = {}
    for t in range(h):
        first_code[idx[t]] = codes[t]
    second_early = stats.early[idx[h:]]
    first_set = set(idx[:h].tolist())
    repeat_share = float(np.mean([i in first_set for i in idx[h:].tolist()]))
    distinct = len(set(idx.tolist())) / n
    rows = np.empty((n - h, N_TASK_FEATURES))
    for t in range(h, n):
        i, prev = idx[t], idx[t - 1]
        offset = t - h
        count, count_early = stats.transition(prev, i)
        v = emb[i]
        next_count, next_early = stats.transition(i, idx[t + 1]) if t + 1 < n else (0.0, 0.0)
        nxt_rate = stats.early[idx[t + 1]] if t + 1 < n else stats.prior
        sim_e = early_vecs @ v if len(early_vecs) else np.zeros(1)
        sim_l = listen_vecs @ v if len(listen_vecs) else np.zeros(1)
        rows[offset] = [
            offset,
            t,
            n,
            t / n,
            h,
            *session_part,
            np.log1p(stats.plays[i]),
            stats.early[i],
            stats.early_after[i, last],
            stats.early_bucket[i, bucket_of(offset)],
            stats.early_second[i],
            stats.early[prev],
            (count_early + PRIOR * stats.early[i]) / (count + PRIOR),
            np.log1p(count),
            float(offset == 0),
            first_code.get(i, NONE_CODE),
            float(i in set(idx[h:t].tolist())),
            sim_e.max(),
            sim_e.mean(),
            sim_l.max(),
            sim_l.mean(),
            float(emb[prev] @ v),
            stats.early[i] - known_early.mean(),
            second_early.mean(),
            second_early[: offset + 1].mean(),
            stats.early[idx[t + 1]] if t + 1 < n else stats.prior,
            np.log1p(next_count),
            (next_early + PRIOR * nxt_rate) / (next_count + PRIOR),
            repeat_share,
            distinct,
        ]
    labels = np.array([p.outcome == "skip_early" for p in plays[h:]], bool)
    return rows, labels


def task_matrix(
    sessions: Sequence[Session], stats: TaskStats
) -> tuple[F64, NDArray[np.bool_], NDArray[np.int64]]:
    """Rows, labels and session numbers (0..S-1 in order) of the sessions' tasks."""
    parts, labels, numbers = [], [], []
    for number, s in enumerate(sessions):
        rows, lab = task_rows(s, stats)
        parts.append(rows)
        labels.append(lab)
        numbers.append(np.full(len(lab), number, np.int64))
    if not parts:
        return np.empty((0, N_TASK_FEATURES)), np.empty(0, bool), np.empty(0, np.int64)
    return np.concatenate(parts), np.concatenate(labels), np.concatenate(numbers)
