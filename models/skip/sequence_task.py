"""The sequence learner of the WSDM skip task (offline, not served): a JAX GRU encoder-decoder.

In the manner of the WSDM Cup 2019 encoder-decoder solutions: an encoder GRU reads the first half
(learned track embedding, outcome code embedding, the track's training statistics and
embedding, position); its last state starts a decoder GRU over the second half's tracks (known
ids, unknown outcomes), and a backward GRU reads the second half from its end (the later tracks
are known too). A small head on both decoder states and the step's inputs gives the logit of an
early skip at every second-half position. The decoder steps also read the WSDM evaluation
model's 40 task columns (:mod:`models.skip.task_features`, out of fold for training rows).
Inputs are standardised by the training rows' moments. Loss: masked binary cross-entropy, AdamW
(optax) with a cosine-decayed rate and clipping; the epoch with the best validation MAA is kept
and its threshold chosen on validation (:data:`models.skip.accuracy.THRESHOLDS`).

Deterministic for a seed (``jax.random`` initialisation, numpy shuffling). Files in a version:
``skip_sequence.npz`` (weights, moments) and ``skip_sequence.json``; the worker never loads them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpy.typing import NDArray

from models.labelled_sessions import Session
from models.skip.sequence_eval import best_threshold
from models.skip.sequence_task_data import (
    SEQUENCE_METADATA_FILE,
    SEQUENCE_WEIGHTS_FILE,
    TaskArrays,
    TrackIndex,
    out_of_fold_arrays,
    task_arrays,
)
from models.skip.task_features import N_TASK_FEATURES, TaskStats

Params = dict[str, jax.Array]


@dataclass(frozen=True)
class SequenceTaskConfig:
    hidden: int = 64
    track_dim: int = 16  # learned track embedding (0: none)
    code_dim: int = 8
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    folds: int = 4
    seed: int = 7
    dropout: float = 0.3  # on the step inputs and the head's hidden layer, in training
    members: int = 3  # networks of seeds seed, seed + 1, ...; their probabilities averaged
    task_columns: bool = True  # the decoder steps read the task model's columns


@dataclass(frozen=True)
class Moments:
    enc_mean: NDArray[np.float32]
    enc_std: NDArray[np.float32]
    dec_mean: NDArray[np.float32]
    dec_std: NDArray[np.float32]

    @classmethod
    def of(cls, a: TaskArrays) -> Moments:
        def pair(x: NDArray[np.float32], m: NDArray[np.float32]) -> tuple[Any, Any]:
            rows = x[m > 0]
            return rows.mean(0).astype(np.float32), (rows.std(0) + 1e-3).astype(np.float32)

        enc, dec = pair(a.enc_feats, a.enc_mask), pair(a.dec_feats, a.dec_mask)
        return cls(enc[0], enc[1], dec[0], dec[1])


def _inputs(a: TaskArrays, m: Moments, cfg: SequenceTaskConfig) -> tuple[jax.Array, ...]:
    enc = (a.enc_feats - m.enc_mean) / m.enc_std * a.enc_mask[..., None]
    dec = (a.dec_feats - m.dec_mean) / m.dec_std * a.dec_mask[..., None]
    if not cfg.task_columns:
        dec[..., -N_TASK_FEATURES:] = 0.0
    return tuple(
        jnp.asarray(x)
        for x in (a.enc_tracks, a.enc_codes, enc, a.enc_mask, a.dec_tracks, dec, a.dec_mask)
    )


def _gru_params(key: jax.Array, d_in: int, h: int, prefix: str) -> Params:
    k1, k2 = jax.random.split(key)
    bound = 1.0 / np.sqrt(h)
    return {
        f"{prefix}_w": jax.random.uniform(k1, (d_in, 3 * h), jnp.float32, -bound, bound),
        f"{prefix}_r": jax.random.uniform(k2, (h, 3 * h), jnp.float32, -bound, bound),
        f"{prefix}_b": jnp.zeros(3 * h, jnp.float32),
    }


def init_params(cfg: SequenceTaskConfig, n_tracks: int, f_enc: int, f_dec: int) -> Params:
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), 6)
    h, dt, dc = cfg.hidden, cfg.track_dim, cfg.code_dim
    params: Params = {
        "te": 0.05 * jax.random.normal(keys[0], (n_tracks, max(dt, 1)), jnp.float32),
        "ce": 0.1 * jax.random.normal(keys[1], (4, dc), jnp.float32),
        **_gru_params(keys[2], max(dt, 1) + dc + f_enc, h, "enc"),
        **_gru_params(keys[3], max(dt, 1) + f_dec, h, "fwd"),
        **_gru_params(keys[4], max(dt, 1) + f_dec, h, "bwd"),
    }
    k5, k6 = jax.random.split(keys[5])
    d_head = 2 * h + max(dt, 1) + f_dec
    params["h1"] = jax.random.normal(k5, (d_head, h), jnp.float32) / np.sqrt(d_head)
    params["h1b"] = jnp.zeros(h, jnp.float32)
    params["h2"] = jax.random.normal(k6, (h, 1), jnp.float32) / np.sqrt(h)
    params["h2b"] = jnp.zeros(1, jnp.float32)
    return params


def _run_gru(
    p: Params,
    prefix: str,
    x: jax.Array,
    mask: jax.Array,
    start: jax.Array,
    *,
    reverse: bool,
) -> tuple[jax.Array, jax.Array]:
    """``x [B, L, F]``; masked steps keep the state. Returns (last state, states [B, L, H])."""
    h = start.shape[1]
    gx = jnp.einsum("blf,fg->lbg", x, p[f"{prefix}_w"]) + p[f"{prefix}_b"]
    r_w = p[f"{prefix}_r"]

    def cell(state: jax.Array, step: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        g, m = step
        gh = state @ r_w
        z = jax.nn.sigmoid(g[:, :h] + gh[:, :h])
        r = jax.nn.sigmoid(g[:, h : 2 * h] + gh[:, h : 2 * h])
        n = jnp.tanh(g[:, 2 * h :] + r * gh[:, 2 * h :])
        new = (1.0 - z) * n + z * state
        new = m[:, None] * new + (1.0 - m[:, None]) * state
        return new, new

    last, hs = jax.lax.scan(cell, start, (gx, mask.T), reverse=reverse)
    return last, jnp.transpose(hs, (1, 0, 2))


def _drop(x: jax.Array, key: jax.Array | None, rate: float) -> jax.Array:
    if key is None or rate <= 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def logits(
    params: Params,
    batch: tuple[jax.Array, ...],
    track_dim: int,
    key: jax.Array | None = None,
    rate: float = 0.0,
) -> jax.Array:
    """``[B, D]`` logits of an early skip at each second-half step (``key``: dropout)."""
    enc_tracks, enc_codes, enc_feats, enc_mask, dec_tracks, dec_feats, dec_mask = batch
    keys = jax.random.split(key, 3) if key is not None else (None, None, None)
    enc_feats = _drop(enc_feats, keys[0], rate)
    dec_feats = _drop(dec_feats, keys[1], rate)
    scale = 1.0 if track_dim > 0 else 0.0
    te_enc = params["te"][enc_tracks] * scale
    te_dec = params["te"][dec_tracks] * scale
    x_enc = jnp.concatenate([te_enc, params["ce"][enc_codes], enc_feats], axis=-1)
    h = params["enc_r"].shape[0]
    zero = jnp.zeros((enc_tracks.shape[0], h), jnp.float32)
    state, _ = _run_gru(params, "enc", x_enc, enc_mask, zero, reverse=False)
    x_dec = jnp.concatenate([te_dec, dec_feats], axis=-1)
    _, fwd = _run_gru(params, "fwd", x_dec, dec_mask, state, reverse=False)
    _, bwd = _run_gru(params, "bwd", x_dec, dec_mask, zero, reverse=True)
    head = jnp.concatenate([fwd, bwd, x_dec], axis=-1)
    hidden = _drop(jax.nn.relu(head @ params["h1"] + params["h1b"]), keys[2], rate)
    return (hidden @ params["h2"] + params["h2b"])[..., 0]


def _loss(
    params: Params,
    batch: tuple[jax.Array, ...],
    labels: jax.Array,
    key: jax.Array,
    cfg: SequenceTaskConfig,
) -> jax.Array:
    z = logits(params, batch, cfg.track_dim, key, cfg.dropout)
    mask = batch[6]
    bce = optax.sigmoid_binary_cross_entropy(z, labels)
    loss: jax.Array = (bce * mask).sum() / jnp.maximum(mask.sum(), 1.0)
    return loss


_predict = jax.jit(logits, static_argnums=2)


def predict_probabilities(
    params: Params, arrays: TaskArrays, moments: Moments, cfg: SequenceTaskConfig
) -> NDArray[np.float64]:
    """Early-skip probabilities of every real second-half step (session, play order)."""
    if arrays.sessions == 0:
        return np.empty(0)
    z = np.asarray(_predict(params, _inputs(arrays, moments, cfg), cfg.track_dim), np.float64)
    return np.asarray(arrays.flat(1.0 / (1.0 + np.exp(-z))), np.float64)


@dataclass(frozen=True, eq=False)
class SequenceTaskModel:
    members: tuple[Params, ...]
    moments: Moments
    config: SequenceTaskConfig
    threshold: float
    stats: dict[str, Any]

    def probabilities(self, arrays: TaskArrays) -> NDArray[np.float64]:
        probs = [predict_probabilities(p, arrays, self.moments, self.config) for p in self.members]
        return np.asarray(np.mean(probs, axis=0), np.float64)

    def save(self, version_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
        weights = {
            f"m{m}_{k}": np.asarray(v) for m, p in enumerate(self.members) for k, v in p.items()
        }
        weights.update({f"moments_{k}": v for k, v in asdict(self.moments).items()})
        np.savez(version_dir / SEQUENCE_WEIGHTS_FILE, allow_pickle=False, **weights)
        metadata = {
            "model": "jax GRU encoder-decoder (offline WSDM evaluation model)",
            "served": False,
            "config": asdict(self.config),
            "threshold": self.threshold,
            **self.stats,
            **extra,
        }
        (version_dir / SEQUENCE_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        return metadata

    @classmethod
    def load(cls, version_dir: Path) -> SequenceTaskModel | None:
        meta_path = version_dir / SEQUENCE_METADATA_FILE
        if not meta_path.exists():
            return None
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(version_dir / SEQUENCE_WEIGHTS_FILE) as f:
            loaded = {k: f[k] for k in f.files}
        moments = Moments(**{k: loaded.pop(f"moments_{k}") for k in asdict_fields(Moments)})
        cfg = SequenceTaskConfig(**metadata["config"])
        members = tuple(
            {
                k.split("_", 1)[1]: jnp.asarray(v)
                for k, v in loaded.items()
                if k.startswith(f"m{m}_")
            }
            for m in range(cfg.members)
        )
        return cls(members, moments, cfg, float(metadata["threshold"]), {})


def asdict_fields(cls: type[Moments]) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)


def fit_sequence_task(
    train: TaskArrays, validation: TaskArrays, n_tracks: int, cfg: SequenceTaskConfig
) -> SequenceTaskModel:
    """Train ``cfg.members`` networks on ``train``, each kept at its epoch of best validation
    MAA; the threshold of their mean probability is chosen on validation."""
    started = time.perf_counter()
    moments = Moments.of(train)
    members, runs = [], []
    for m in range(cfg.members):
        params, run = _fit_member(
            train, validation, n_tracks, moments, replace(cfg, seed=cfg.seed + m)
        )
        members.append(params)
        runs.append(run)
    model = SequenceTaskModel(tuple(members), moments, cfg, 0.5, {})
    threshold, maa = (0.5, 0.0)
    if validation.sessions:
        threshold, maa = best_threshold(validation, model.probabilities(validation))
    stats = {
        "members": runs,
        "validation_maa": maa,
        "train_sessions": train.sessions,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return SequenceTaskModel(tuple(members), moments, cfg, threshold, stats)


def _fit_member(
    train: TaskArrays,
    validation: TaskArrays,
    n_tracks: int,
    moments: Moments,
    cfg: SequenceTaskConfig,
) -> tuple[Params, dict[str, Any]]:
    params = init_params(cfg, n_tracks, train.enc_feats.shape[2], train.dec_feats.shape[2])
    steps = max(1, train.sessions // cfg.batch_size)
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, steps * cfg.epochs, alpha=0.05)
    opt = optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.adamw(schedule, weight_decay=cfg.weight_decay),
    )
    state = opt.init(params)

    @jax.jit
    def step(
        p: Params, s: optax.OptState, batch: tuple[jax.Array, ...], labels: jax.Array, k: jax.Array
    ) -> tuple[Params, optax.OptState, jax.Array]:
        loss, grads = jax.value_and_grad(_loss)(p, batch, labels, k, cfg)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng(cfg.seed)
    key = jax.random.PRNGKey(cfg.seed + 1)
    best: tuple[float, int, float, Params] = (-1.0, -1, 0.5, params)
    history = []
    for epoch in range(cfg.epochs):
        order = rng.permutation(train.sessions)
        total = 0.0
        for b in range(steps):
            part = train.take(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            key, sub = jax.random.split(key)
            batch = _inputs(part, moments, cfg)
            params, state, loss = step(params, state, batch, jnp.asarray(part.labels), sub)
            total += float(loss)
        prob = predict_probabilities(params, validation, moments, cfg)
        threshold, maa = best_threshold(validation, prob) if validation.sessions else (0.5, 0.0)
        history.append({"epoch": epoch, "loss": round(total / steps, 5), "val_maa": maa})
        if maa > best[0]:
            best = (maa, epoch, threshold, params)
    run = {"seed": cfg.seed, "epochs": history, "best_epoch": best[1], "validation_maa": best[0]}
    return best[3], run


def train_sequence_task(
    train: Sequence[Session],
    validation: Sequence[Session],
    stats: TaskStats,
    version_dir: Path | None,
    config: SequenceTaskConfig | None = None,
) -> SequenceTaskModel:
    """Fit on the training split (rows out of fold), select on validation (rows with ``stats``,
    fitted on the whole training split); write it into ``version_dir`` when given."""
    cfg = config or SequenceTaskConfig()
    index = TrackIndex.of(train)
    rows = out_of_fold_arrays(train, index, cfg.folds, cfg.seed)
    val = task_arrays(validation, stats, index)
    model = fit_sequence_task(rows, val, index.size, cfg)
    if version_dir is not None:
        model.save(version_dir, {"tracks": index.size})
    return model
