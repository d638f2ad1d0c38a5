"""How far the WSDM-style early-skip task goes on this data: a learning curve, and decisions
made for the metric itself.

    python -m devtools.skip_ceiling [--data PATH] [--fractions 0.25 0.5 0.75 1]
                                    [--repeats 3] [--samples 256] [--seed 7]

Works on the VALIDATION split only (the split of ``nowplaying train``, seed 7 by default).

1. **Learning curve.** The WSDM evaluation model (:mod:`models.skip.task_model`, its 40 task
   columns) trained on a random share of the training sessions; its statistics, embeddings and
   out-of-fold rows come from that share alone. Each share is drawn ``--repeats`` times. The
   figure is the validation MAA at the best threshold (chosen on validation, so optimistic for
   every share alike). A curve that has flattened says more sessions of the same kind would not
   lift the model: the columns, not the amount of data, set the ceiling.
2. **Decisions for the metric.** MAA weighs a session's early predictions most and rewards runs
   of correct ones, so thresholding each track alone is not the best decision when outcomes go
   together. An autoregressive model (the task columns plus the second half's earlier outcomes:
   the true ones in training) samples ``--samples`` outcome sequences per session; the
   prediction chosen is the one with the best mean AA over them (:func:`expected_aa`), against
   the task model's thresholded probabilities on the same sessions. Both models are
   early-stopped on these validation rows (the autoregressive one with their true earlier
   outcomes) and the threshold is chosen on them, so both figures are optimistic alike.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from features.artifacts import fit_artifacts
from models.datasets import load_sessions
from models.labelled_sessions import Session, split_sessions
from models.skip.accuracy import best_threshold, session_accuracies
from models.skip.task_features import (
    CODE,
    F64,
    TASK_FEATURE_NAMES,
    fit_task_stats,
    task_matrix,
)
from models.skip.task_model import (
    TaskConfig,
    embeddings_of,
    fit_task_booster,
    out_of_fold_task_rows,
)
from nowplaying.settings import Settings

B = NDArray[np.bool_]
#: Predictions of up to this many tracks are searched exhaustively (2**T candidates).
EXHAUSTIVE_UP_TO: Final = 12
HISTORY_NAMES: Final = (
    "previous_early",  # the play just before: sampled/true in the second half, else known
    "second_previous_early",
    "second_half_early_share",  # of the second half's earlier plays (NaN at its first)
    "second_half_run",  # trailing run of the previous play's outcome within the second half
    "second_half_count",
)
_OFFSET = TASK_FEATURE_NAMES.index("offset")
_LAST = TASK_FEATURE_NAMES.index("last_1_code")
_SECOND_LAST = TASK_FEATURE_NAMES.index("last_2_code")
_EARLY = CODE["skip_early"]


def expected_aa(predictions: B, samples: B) -> F64:
    """Mean AA of each prediction vector ``[P, T]`` over the outcome samples ``[S, T]``."""
    correct = (predictions[:, None, :] == samples[None, :, :]).astype(np.float64)
    running = np.cumsum(correct, axis=-1) / np.arange(1, predictions.shape[1] + 1)
    return np.asarray((running * correct).mean(axis=-1).mean(axis=-1), np.float64)


def metric_optimal(samples: B) -> B:
    """The prediction of one session's tracks with the best mean AA over ``samples [S, T]``:
    every vector when T <= EXHAUSTIVE_UP_TO, else coordinate ascent from the majority vote."""
    t = samples.shape[1]
    if t <= EXHAUSTIVE_UP_TO:
        every = np.array(list(itertools.product((False, True), repeat=t)), bool)
        return np.asarray(every[int(np.argmax(expected_aa(every, samples)))], bool)
    best = np.asarray(samples.mean(axis=0) >= 0.5, bool)
    score = float(expected_aa(best[None], samples)[0])
    improved = True
    while improved:
        improved = False
        for i in range(t):
            flipped = best.copy()
            flipped[i] = not flipped[i]
            s = float(expected_aa(flipped[None], samples)[0])
            if s > score:
                best, score, improved = flipped, s, True
    return best


def history_columns(rows: F64, outcomes: F64, at: NDArray[np.intp]) -> F64:
    """:data:`HISTORY_NAMES` of the rows ``at`` (all at one second-half offset k; a session's
    rows are consecutive and in play order), from ``outcomes`` of the rows before them."""
    k = int(rows[at[0], _OFFSET]) if len(at) else 0
    out = np.empty((len(at), len(HISTORY_NAMES)))
    if k == 0:
        out[:, 0] = rows[at, _LAST] == _EARLY
        out[:, 1] = rows[at, _SECOND_LAST] == _EARLY
        out[:, 2:4] = (np.nan, 0.0)
    else:
        earlier = np.stack([outcomes[at - j] for j in range(1, k + 1)], axis=1)  # newest first
        out[:, 0] = earlier[:, 0]
        out[:, 1] = earlier[:, 1] if k > 1 else rows[at, _LAST] == _EARLY
        out[:, 2] = earlier.mean(axis=1)
        out[:, 3] = np.cumprod(earlier == earlier[:, :1], axis=1).sum(axis=1)
    out[:, 4] = k
    return out


def with_history(rows: F64, outcomes: F64) -> F64:
    """The rows with their history columns, from known outcomes (teacher forcing)."""
    offsets = rows[:, _OFFSET].astype(np.int64)
    extra = np.empty((len(rows), len(HISTORY_NAMES)))
    for k in range(int(offsets.max(initial=-1)) + 1):
        at = np.flatnonzero(offsets == k)
        extra[at] = history_columns(rows, outcomes, at)
    return np.hstack([rows, extra])


def sample_outcomes(booster: lgb.Booster, rows: F64, samples: int, seed: int) -> B:
    """``[samples, len(rows)]`` outcome sequences drawn from the autoregressive model."""
    tiled = np.tile(rows, (samples, 1))
    offsets = tiled[:, _OFFSET].astype(np.int64)
    drawn = np.zeros(len(tiled))
    rng = np.random.default_rng(seed)
    for k in range(int(offsets.max(initial=-1)) + 1):
        at = np.flatnonzero(offsets == k)
        features = np.hstack([tiled[at], history_columns(tiled, drawn, at)])
        p = np.asarray(booster.predict(features, num_threads=2), np.float64)
        drawn[at] = rng.random(len(at)) < p
    return drawn.reshape(samples, len(rows)).astype(bool)


def _task_fit(
    train: Sequence[Session], validation: Sequence[Session], cfg: TaskConfig
) -> tuple[lgb.Booster, F64, F64, B, NDArray[np.int64], B]:
    rows, labels = out_of_fold_task_rows(train, cfg)
    embeddings = embeddings_of(fit_artifacts(train, seed=cfg.seed))
    val_rows, val_labels, val_sessions = task_matrix(validation, fit_task_stats(train, embeddings))
    booster = fit_task_booster(rows, labels, val_rows, val_labels, cfg)
    return booster, rows, val_rows, labels, val_sessions, val_labels


def learning_curve(
    train: Sequence[Session],
    validation: Sequence[Session],
    fractions: Sequence[float],
    repeats: int,
    cfg: TaskConfig,
) -> list[tuple[float, list[float]]]:
    """Validation MAA of the task model per share of the training sessions."""
    rng = np.random.default_rng(cfg.seed)
    curve = []
    for fraction in fractions:
        figures = []
        for _ in range(1 if fraction >= 1 else repeats):
            chosen = rng.permutation(len(train))[: max(1, round(fraction * len(train)))]
            booster, _, val_rows, _, sessions, labels = _task_fit(
                [train[i] for i in sorted(chosen)], validation, cfg
            )
            prob = np.asarray(booster.predict(val_rows, num_threads=2), np.float64)
            figures.append(best_threshold(prob, sessions, labels)[1])
        curve.append((fraction, figures))
    return curve


def metric_decisions(
    train: Sequence[Session], validation: Sequence[Session], samples: int, cfg: TaskConfig
) -> dict[str, tuple[float, float]]:
    """(MAA, first-track accuracy) on validation of the thresholded task model, the
    autoregressive model's per-track majority and its metric-optimal decisions."""
    booster, rows, val_rows, labels, sessions, val_labels = _task_fit(train, validation, cfg)
    prob = np.asarray(booster.predict(val_rows, num_threads=2), np.float64)
    threshold, _ = best_threshold(prob, sessions, val_labels)
    names = (*TASK_FEATURE_NAMES, *HISTORY_NAMES)
    autoregressive = fit_task_booster(
        with_history(rows, labels.astype(np.float64)),
        labels,
        with_history(val_rows, val_labels.astype(np.float64)),
        val_labels,
        cfg,
        feature_names=names,
    )
    drawn = sample_outcomes(autoregressive, val_rows, samples, cfg.seed)
    chosen = np.empty(len(val_rows), bool)
    bounds = np.flatnonzero(np.diff(sessions)) + 1
    for part in np.split(np.arange(len(val_rows)), bounds):
        chosen[part] = metric_optimal(drawn[:, part])
    out = {}
    for name, predicted in (
        ("task model, thresholded", prob >= threshold),
        ("autoregressive, per-track majority", drawn.mean(axis=0) >= 0.5),
        ("autoregressive, metric-optimal", chosen),
    ):
        aa, first = session_accuracies(sessions, predicted, val_labels)
        out[name] = (float(aa.mean()), float(first.mean()))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=7, help="split seed")
    args = parser.parse_args(argv)
    sessions, description = load_sessions(Settings(), args.data, False, None)
    train, validation, _ = split_sessions(sessions, seed=args.seed)
    cfg = TaskConfig(threads=2)
    print(f"{description}; validation split ({len(validation)} sessions)")
    print("\n| training sessions | validation MAA (each draw) | mean |\n|---|---|---|")
    for fraction, figures in learning_curve(train, validation, args.fractions, args.repeats, cfg):
        each = ", ".join(f"{f:.4f}" for f in figures)
        print(f"| {round(fraction * len(train)):,} | {each} | {np.mean(figures):.4f} |")
    print("\n| decisions | validation MAA | first-track accuracy |\n|---|---|---|")
    for name, (maa, first) in metric_decisions(train, validation, args.samples, cfg).items():
        print(f"| {name} | {maa:.4f} | {first:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
