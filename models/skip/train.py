"""Training of the skip-risk model: out-of-fold rows, LightGBM binary, ONNX, into a version.

:func:`train_skip_model` (called by :func:`models.train.train_model` for every new version, and
by ``python -m models.skip.train VERSION_DIR`` for a version trained before it existed):

1. **Rows, out of fold.** Every training session gives its ``online`` and ``half`` examples
   (:mod:`models.skip.examples`); the sessions are cut into ``folds`` parts and the rows of each
   part are built with track artifacts fitted on the OTHER parts (otherwise a track's smoothed
   early-skip rate would contain the very play it must predict).
2. ``lightgbm`` ``objective="binary"``, early-stopped on the log loss of the validation split's
   examples (rows built with the version's serving artifacts, fitted on the training split).
3. The decision threshold is the one with the best validation MAA (``half`` examples).
4. ONNX export (the float32 thresholds fixed as for the ranker, :mod:`models.export`); the
   parity of ONNX and LightGBM on the validation rows is recorded in ``skip.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from features.artifacts import TrackArtifacts, fit_artifacts
from features.rows import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES
from models.export import INPUT_NAME, TARGET_OPSET, exact_float32_thresholds
from models.labelled_sessions import Session
from models.skip.accuracy import best_threshold
from models.skip.examples import SkipExample, example_rows, labels_of, session_examples
from models.skip.params import binary_params
from models.skip.scorer import (
    SKIP_LIGHTGBM_FILE,
    SKIP_METADATA_FILE,
    SKIP_MODEL_FILE,
    SkipRiskModel,
)
from models.skip.task_model import TaskConfig, train_task_model


@dataclass(frozen=True)
class SkipConfig:
    trees: int = 400
    leaves: int = 31
    learning_rate: float = 0.05
    min_child_samples: int = 100
    folds: int = 4  # out-of-fold artifacts for the training rows (1: no folds)
    early_stopping_rounds: int = 30
    seed: int = 7
    threads: int = 1


def train_skip_model(
    train: Sequence[Session],
    validation: Sequence[Session],
    artifacts: TrackArtifacts,
    version_dir: Path,
    config: SkipConfig | None = None,
) -> dict[str, Any]:
    """Fit, export and write the skip model into ``version_dir``; returns its metadata.
    ``artifacts`` are the version's serving artifacts (fitted on ``train``)."""
    cfg = config or SkipConfig()
    started = time.perf_counter()
    rows, labels = out_of_fold_rows(train, cfg)
    val_examples = [e for s in validation for e in session_examples(s)]
    val_rows = example_rows(val_examples, artifacts)
    val_labels = labels_of(val_examples)
    booster = fit_skip(rows, labels, val_rows, val_labels, cfg)
    threshold, val_maa = choose_threshold(booster, val_examples, val_rows)
    opsets = export_skip_onnx(booster, version_dir / SKIP_MODEL_FILE)
    booster.save_model(str(version_dir / SKIP_LIGHTGBM_FILE))
    metadata: dict[str, Any] = {
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "model": {
            "type": "lightgbm.Booster",
            "objective": "binary",
            "target": "skip_early",
            "best_iteration": booster.current_iteration(),
            "lightgbm_version": lgb.__version__,
        },
        "onnx": {"input": INPUT_NAME, "target_opset": TARGET_OPSET, "opsets": opsets},
        "params": asdict(cfg),
        "threshold": threshold,
        "training": {"rows": len(rows), "skip_share": float(labels.mean()) if len(labels) else 0},
        "validation": {"rows": len(val_rows), "maa_half": val_maa},
    }
    (version_dir / SKIP_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    scorer = SkipRiskModel.load(version_dir)
    assert scorer is not None
    lgb_prob = np.asarray(booster.predict(val_rows, num_threads=1))
    diff = np.abs(scorer.risk(val_rows) - lgb_prob)
    metadata["parity"] = {"rows": len(val_rows), "max_abs_diff": float(diff.max(initial=0.0))}
    metadata["seconds"] = round(time.perf_counter() - started, 1)
    (version_dir / SKIP_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def add_skip_model(
    version_dir: Path,
    splits: tuple[Sequence[Session], Sequence[Session], Sequence[Session]],
    artifacts: TrackArtifacts,
    *,
    seed: int,
    threads: int,
    folds: int,
    evaluate: bool,
    task_model: bool = False,
) -> None:
    """What ``nowplaying train`` does for the skip model: train it into the version folder,
    with ``task_model`` also the offline WSDM evaluation model (:mod:`models.skip.task_model`,
    about 90 s on the real data: ``nowplaying train --skip-task-model`` or ``python -m
    models.skip.train VERSION_DIR``), and, with ``evaluate``, write its test-split evaluation
    (``skip_report.md``)."""
    from models.skip.evaluation import run_skip  # noqa: PLC0415

    train, val, test = splits
    config = SkipConfig(seed=seed, threads=threads, folds=max(1, min(folds, SkipConfig.folds)))
    train_skip_model(train, val, artifacts, version_dir, config)
    if task_model:
        task_config = TaskConfig(seed=seed, threads=threads, folds=config.folds)
        train_task_model(train, val, artifacts, version_dir, task_config)
    if evaluate and test:
        run_skip(version_dir, test, quiet=True, train=train)


def fold_of(session_id: str, folds: int, seed: int) -> int:
    digest = hashlib.blake2b(f"skip-fold:{seed}:{session_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % folds


def out_of_fold_rows(train: Sequence[Session], cfg: SkipConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of the training sessions' examples, each fold's rows built with
    artifacts fitted on the other folds."""
    if cfg.folds <= 1:
        examples = [e for s in train for e in session_examples(s)]
        return example_rows(examples, fit_artifacts(train, seed=cfg.seed)), labels_of(examples)
    parts_rows, parts_labels = [], []
    for fold in range(cfg.folds):
        inside = [s for s in train if fold_of(s.session_id, cfg.folds, cfg.seed) == fold]
        outside = [s for s in train if fold_of(s.session_id, cfg.folds, cfg.seed) != fold]
        examples = [e for s in inside for e in session_examples(s)]
        parts_rows.append(example_rows(examples, fit_artifacts(outside, seed=cfg.seed)))
        parts_labels.append(labels_of(examples))
    return np.concatenate(parts_rows), np.concatenate(parts_labels)


def fit_skip(
    rows: np.ndarray,
    labels: np.ndarray,
    val_rows: np.ndarray,
    val_labels: np.ndarray,
    cfg: SkipConfig,
) -> lgb.Booster:
    params = binary_params(cfg, feature_fraction=0.9)
    train_set = lgb.Dataset(rows, labels, feature_name=list(FEATURE_NAMES), free_raw_data=True)
    callbacks: list[Callable[..., Any]] = []
    valid_sets = []
    if len(val_rows) and cfg.early_stopping_rounds > 0:
        valid_sets = [lgb.Dataset(val_rows, val_labels, reference=train_set)]
        callbacks.append(lgb.early_stopping(cfg.early_stopping_rounds, verbose=False))
    booster = lgb.train(
        params, train_set, num_boost_round=cfg.trees, valid_sets=valid_sets, callbacks=callbacks
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def choose_threshold(
    booster: lgb.Booster, examples: Sequence[SkipExample], rows: np.ndarray
) -> tuple[float, float]:
    """The threshold of :data:`THRESHOLDS` with the best MAA on the ``half`` examples (and
    that MAA); 0.5 when there are none."""
    half = [i for i, e in enumerate(examples) if e.is_half]
    if not half:
        return 0.5, 0.0
    prob = np.asarray(booster.predict(rows[half], num_threads=1), np.float64)
    chosen = [examples[i] for i in half]
    return best_threshold(prob, _session_numbers(chosen), labels_of(chosen).astype(bool))


def _session_numbers(examples: Sequence[SkipExample]) -> np.ndarray:
    numbers: dict[str, int] = {}
    return np.array([numbers.setdefault(e.session_id, len(numbers)) for e in examples], np.int64)


def export_skip_onnx(booster: lgb.Booster, path: Path) -> dict[str, int]:
    """The binary booster as ONNX: input ``features [N, F]``, outputs ``label`` and
    ``probabilities [N, 2]``."""
    import onnxmltools  # noqa: PLC0415 (heavy; only training converts)
    from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: PLC0415

    onx = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, N_FEATURES]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )
    exact_float32_thresholds(onx, booster)
    path.write_bytes(onx.SerializeToString())
    return {(op.domain or "ai.onnx"): int(op.version) for op in onx.opset_import}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.skip.train VERSION_DIR``: add the skip model to a version trained
    without one (on the version's own data and split). With ``--sequence``: only the offline
    sequence learner and its ensemble with the version's WSDM evaluation model
    (:mod:`models.skip.sequence_eval`)."""
    from models.skip.version_data import version_splits  # noqa: PLC0415
    from nowplaying.cli import start_process  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m models.skip.train")
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--sequence",
        action="store_true",
        help="train only the offline GRU sequence learner and its ensemble (jax, a few minutes)",
    )
    args = parser.parse_args(argv)
    settings = start_process()
    train, val, _, description = version_splits(settings, args.version_dir)
    print(f"data: {description}")
    artifacts = TrackArtifacts.load(args.version_dir)
    if args.sequence:
        from models.skip.sequence_eval import add_sequence_task_model  # noqa: PLC0415 (jax)

        sequence = add_sequence_task_model(train, val, artifacts, args.version_dir)
        print(json.dumps({"sequence_model": sequence["validation_figures"]}))
        return 0
    metadata = train_skip_model(
        train, val, artifacts, args.version_dir, SkipConfig(threads=args.threads)
    )
    print(json.dumps({k: metadata[k] for k in ("threshold", "validation", "parity", "seconds")}))
    task = train_task_model(
        train, val, artifacts, args.version_dir, TaskConfig(threads=args.threads)
    )
    print(json.dumps({"task_model": {k: task[k] for k in ("threshold", "validation")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
