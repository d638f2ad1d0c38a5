"""Training of the next-track sequence model with JAX + optax (CPU); the only jax importer.

GRU4Rec-style: a GRU reads the session's plays (track embedding + the previous play's outcome
embedding, see :mod:`models.sequence.graph`) and a full-softmax output layer predicts the next
track at EVERY step of every training row, so one pass over a row trains all its positions
(:func:`features.sequence.session_sequences`; right padding, and since a step only depends on
the steps before it, padded steps need no masking in the recurrence, only in the loss).
Loss: cross-entropy over all artifact tracks, each target weighted by
:attr:`SequenceConfig.target_weights` of its outcome. Adam with a cosine-decayed learning rate
and global-norm clipping.

Deterministic for a seed: the initialisation (``jax.random``), the shuffling and the input
noise (numpy) are seeded; XLA's CPU kernels give the same results for the same inputs on the
same machine and thread count (a test checks two runs give the same ONNX scores).

The worker and the API never import this module (they run the exported ONNX graph through
:class:`models.sequence.scorer.SequenceScorer`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from features.artifacts import F32, I64, TrackArtifacts
from features.sequence import (
    N_OUTCOME_CODES,
    OUTCOME_CODES,
    UNKNOWN_OUTCOME,
    SequenceRows,
    session_sequences,
)
from models.labelled_sessions import Session
from models.sequence.config import SequenceConfig
from models.sequence.graph import SequenceWeights, save_graph

__all__ = [
    "SequenceConfig",
    "TrainedSequenceModel",
    "forget_fitted_models",
    "train_out_of_fold",
    "train_sequence_model",
]

Params = dict[str, jax.Array]


@dataclass(frozen=True, eq=False)
class TrainedSequenceModel:
    weights: SequenceWeights
    config: SequenceConfig
    #: ids of the sessions it was trained on (it must not score them for the ranker's rows)
    trained_on: frozenset[str] = frozenset()
    #: examples (target positions), rows, epochs, per-epoch mean loss, wall and CPU seconds
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tracks(self) -> int:
        return self.weights.n_tracks

    def save_onnx(self, path: Path) -> None:
        save_graph(self.weights, path)

    def scores(self, tracks: I64, outcomes: I64, lengths: I64) -> F32:
        """Logits ``[B, n_tracks]`` after each row's last real play (the JAX forward)."""
        if len(tracks) == 0:
            return np.zeros((0, self.n_tracks), np.float32)
        params = _params_of(self.weights)
        out = _last_scores(params, jnp.asarray(tracks), jnp.asarray(outcomes), jnp.asarray(lengths))
        return np.asarray(out, dtype=np.float32)

    def step_scores(self, tracks: I64, outcomes: I64) -> F32:
        """Logits ``[B, L, n_tracks]`` after EVERY step (what training fits), JAX forward."""
        params = _params_of(self.weights)
        out = _step_scores(params, jnp.asarray(tracks), jnp.asarray(outcomes))
        return np.asarray(out, dtype=np.float32)


def train_sequence_model(
    sessions: Sequence[Session],
    artifacts: TrackArtifacts,
    *,
    seed: int = 0,
    config: SequenceConfig | None = None,
) -> TrainedSequenceModel:
    """Fit the model on ``sessions`` (training sessions only: every play is a target).

    The same sessions, track index, seed and config give the same model, so the last few
    fitted models are kept (in this process) and returned again instead of being refitted:
    ``nowplaying train`` fits the served model and the evaluation's ``sequence`` baseline on the
    same training split."""
    cfg = config or SequenceConfig()
    key = _fit_key(sessions, artifacts, seed, cfg)
    if key in _FITTED:
        return _FITTED[key]
    model = _fit(sessions, artifacts, seed, cfg)
    _FITTED[key] = model
    while len(_FITTED) > _FITTED_KEPT:
        del _FITTED[next(iter(_FITTED))]
    return model


#: Models kept by :func:`train_sequence_model`, oldest first.
_FITTED: dict[str, TrainedSequenceModel] = {}
_FITTED_KEPT = 3


def forget_fitted_models() -> None:
    """Drop the kept models (the next call fits again)."""
    _FITTED.clear()


def _fit_key(
    sessions: Sequence[Session], artifacts: TrackArtifacts, seed: int, cfg: SequenceConfig
) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([seed, cfg.to_json()], sort_keys=True).encode())
    digest.update("\x1f".join(artifacts.track_ids).encode())
    for s in sessions:
        digest.update(s.session_id.encode() + b"\x1e")
        for p in s.plays:
            digest.update(f"{p.track_id}\x1f{p.outcome}\x1d".encode())
    return digest.hexdigest()


def _fit(
    sessions: Sequence[Session], artifacts: TrackArtifacts, seed: int, cfg: SequenceConfig
) -> TrainedSequenceModel:
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = session_sequences(sessions, artifacts, cfg.length)
    weights = _target_weights(rows, cfg)
    rng = np.random.default_rng(seed)
    params = _init(jax.random.PRNGKey(seed), artifacts.n_tracks, cfg, rows, weights)
    n_rows = len(rows.tracks)
    steps_per_epoch = max(1, -(-n_rows // cfg.batch_size))
    schedule = optax.cosine_decay_schedule(
        cfg.learning_rate, steps_per_epoch * max(cfg.epochs, 1), alpha=0.1
    )
    state = _ADAM.init(params)
    clip = jnp.float32(cfg.grad_clip)
    done = 0
    losses: list[float] = []
    for _ in range(cfg.epochs if n_rows else 0):
        order = rng.permutation(n_rows)
        total, count = 0.0, 0.0
        for b in range(steps_per_epoch):
            picked = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch = _batch(rows, weights, picked, min(cfg.batch_size, n_rows))
            tracks, outcomes = _noisy_inputs(batch[0], batch[1], cfg, rng)
            rate = jnp.float32(schedule(done))
            params, state, loss = _step(
                params, state, (tracks, outcomes, batch[2], batch[3]), rate, clip
            )
            done += 1
            w = float(batch[3].sum())
            total += float(loss) * w
            count += w
        losses.append(round(total / max(count, 1e-9), 5))
    stats = {
        "rows": n_rows,
        "examples": int((weights > 0).sum()),
        "epochs": cfg.epochs,
        "epoch_loss": losses,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "seed": seed,
        "config": cfg.to_json(),
    }
    trained_on = frozenset(s.session_id for s in sessions)
    return TrainedSequenceModel(_weights_of(params), cfg, trained_on, stats)


def train_out_of_fold(
    sessions: Sequence[Session],
    artifacts: TrackArtifacts,
    *,
    folds: int = 2,
    seed: int = 0,
    config: SequenceConfig | None = None,
) -> list[tuple[frozenset[str], TrainedSequenceModel]]:
    """``folds`` models, each trained on all sessions but one fold; returned with the ids of
    the sessions it did NOT see (the only ones it may score). Folds: a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(sessions))
    fold_of = np.empty(len(sessions), np.int64)
    fold_of[order] = np.arange(len(sessions)) % folds
    out = []
    for k in range(folds):
        train = [s for s, f in zip(sessions, fold_of, strict=True) if f != k]
        held = frozenset(s.session_id for s, f in zip(sessions, fold_of, strict=True) if f == k)
        out.append((held, train_sequence_model(train, artifacts, seed=seed + k + 1, config=config)))
    return out


def _target_weights(rows: SequenceRows, cfg: SequenceConfig) -> F32:
    by_code = np.zeros(N_OUTCOME_CODES, np.float32)
    for outcome, code in OUTCOME_CODES.items():
        by_code[code] = cfg.target_weights.get(outcome, 1.0)
    by_code[UNKNOWN_OUTCOME] = 1.0
    w = by_code[rows.target_outcomes]
    w[rows.targets < 0] = 0.0
    return w.astype(np.float32)


def _batch(rows: SequenceRows, weights: F32, picked: I64, size: int) -> tuple[I64, I64, I64, F32]:
    """One batch of ``size`` rows (one compiled shape); a short last batch is filled with
    padding rows of weight 0."""
    fill = size - len(picked)
    tracks, outcomes = rows.tracks[picked], rows.outcomes[picked]
    targets, w = rows.targets[picked], weights[picked]
    if fill > 0:
        tracks = np.pad(tracks, ((0, fill), (0, 0)))
        outcomes = np.pad(outcomes, ((0, fill), (0, 0)))
        targets = np.pad(targets, ((0, fill), (0, 0)), constant_values=-1)
        w = np.pad(w, ((0, fill), (0, 0)))
    return tracks, outcomes, targets, w


def _noisy_inputs(
    tracks: I64, outcomes: I64, cfg: SequenceConfig, rng: np.random.Generator
) -> tuple[I64, I64]:
    tracks, outcomes = tracks.copy(), outcomes.copy()
    if cfg.unknown_track_rate > 0:
        tracks[(tracks > 0) & (rng.random(tracks.shape) < cfg.unknown_track_rate)] = 0
    if cfg.unknown_outcome_rate > 0:
        hit = (outcomes > 0) & (rng.random(outcomes.shape) < cfg.unknown_outcome_rate)
        outcomes[hit] = UNKNOWN_OUTCOME
    return tracks, outcomes


def _init(
    key: jax.Array, n_tracks: int, cfg: SequenceConfig, rows: SequenceRows, weights: F32
) -> Params:
    d, h = cfg.embedding_dim, cfg.hidden
    keys = jax.random.split(key, 5)
    bound = 1.0 / np.sqrt(h)
    counts = np.bincount(rows.targets[weights > 0], minlength=n_tracks).astype(np.float64)
    log_freq = np.log(counts + 1.0)
    return {
        "te": 0.1 * jax.random.normal(keys[0], (n_tracks + 1, d), jnp.float32),
        "oe": 0.1 * jax.random.normal(keys[1], (N_OUTCOME_CODES, d), jnp.float32),
        "w": jax.random.uniform(keys[2], (3 * h, d), jnp.float32, -bound, bound),
        "r": jax.random.uniform(keys[3], (3 * h, h), jnp.float32, -bound, bound),
        "wb": jnp.zeros(3 * h, jnp.float32),
        "rb": jnp.zeros(3 * h, jnp.float32),
        "out": bound * jax.random.normal(keys[4], (h, n_tracks), jnp.float32),
        "ob": jnp.asarray(log_freq - log_freq.mean(), jnp.float32),
    }


def _hidden_states(params: Params, tracks: jax.Array, outcomes: jax.Array) -> jax.Array:
    """``[B, L, H]``: the hidden state after each step (see :mod:`models.sequence.graph`)."""
    x_outcome = params["oe"][outcomes]
    shifted = jnp.pad(x_outcome[:, :-1], ((0, 0), (1, 0), (0, 0)))
    x = params["te"][tracks] + shifted
    gx = jnp.einsum("bld,gd->lbg", x, params["w"]) + params["wb"]
    h = params["r"].shape[1]
    r_t, rb = params["r"].T, params["rb"]

    def cell(state: jax.Array, gx_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        gh = state @ r_t + rb
        z = jax.nn.sigmoid(gx_t[:, :h] + gh[:, :h])
        r = jax.nn.sigmoid(gx_t[:, h : 2 * h] + gh[:, h : 2 * h])
        n = jnp.tanh(gx_t[:, 2 * h :] + r * gh[:, 2 * h :])
        new = (1.0 - z) * n + z * state
        return new, new

    start = jnp.zeros((tracks.shape[0], h), jnp.float32)
    _, hs = jax.lax.scan(cell, start, gx)
    return jnp.transpose(hs, (1, 0, 2))


@jax.jit
def _last_scores(
    params: Params, tracks: jax.Array, outcomes: jax.Array, lengths: jax.Array
) -> jax.Array:
    hs = _hidden_states(params, tracks, outcomes)
    last = jnp.clip(lengths, 1, tracks.shape[1]) - 1
    h = jnp.take_along_axis(hs, last[:, None, None], axis=1)[:, 0]
    return h @ params["out"] + params["ob"]


@jax.jit
def _step_scores(params: Params, tracks: jax.Array, outcomes: jax.Array) -> jax.Array:
    return _hidden_states(params, tracks, outcomes) @ params["out"] + params["ob"]


def _loss(
    params: Params,
    tracks: jax.Array,
    outcomes: jax.Array,
    targets: jax.Array,
    weights: jax.Array,
) -> jax.Array:
    hs = _hidden_states(params, tracks, outcomes)
    logits = hs @ params["out"] + params["ob"]
    picked = jnp.take_along_axis(logits, jnp.maximum(targets, 0)[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits, axis=-1) - picked
    return (nll * weights).sum() / jnp.maximum(weights.sum(), 1e-9)


_ADAM = optax.scale_by_adam()


@jax.jit
def _step(
    params: Params,
    state: optax.OptState,
    batch: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    rate: jax.Array,
    clip: jax.Array,
) -> tuple[Params, optax.OptState, jax.Array]:
    """One Adam step with global-norm clipping; the rate and the clip are traced, so one
    compilation serves every training run of the same shapes."""
    loss, grads = jax.value_and_grad(_loss)(params, *batch)
    scale = jnp.minimum(1.0, clip / jnp.maximum(optax.tree.norm(grads), 1e-12))
    grads = jax.tree_util.tree_map(lambda g: g * scale, grads)
    updates, state = _ADAM.update(grads, state, params)
    params = jax.tree_util.tree_map(lambda p, u: p - rate * u, params, updates)
    return params, state, loss


def _weights_of(params: Params) -> SequenceWeights:
    get = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    return SequenceWeights(
        track_embedding=get["te"],
        outcome_embedding=get["oe"],
        w=get["w"],
        r=get["r"],
        wb=get["wb"],
        rb=get["rb"],
        output=get["out"],
        output_bias=get["ob"],
    )


def _params_of(weights: SequenceWeights) -> Params:
    return {
        "te": jnp.asarray(weights.track_embedding),
        "oe": jnp.asarray(weights.outcome_embedding),
        "w": jnp.asarray(weights.w),
        "r": jnp.asarray(weights.r),
        "wb": jnp.asarray(weights.wb),
        "rb": jnp.asarray(weights.rb),
        "out": jnp.asarray(weights.output),
        "ob": jnp.asarray(weights.output_bias),
    }
