"""``nowplaying train``: load the data set the arguments name, train, register, print a summary.

The training itself is :func:`models.train.train_model`; the arguments are parsed by
:mod:`nowplaying.cli`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from features.rows import FEATURE_NAMES, FEATURE_VERSION
from models.datasets import DataError, load_sessions
from models.evaluate import Evaluation, summary_table
from models.registry import METADATA_FILE, latest_version
from models.train import TrainConfig, train_model
from nowplaying.settings import Settings


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying train``: train on real data (default) or ``--synthetic`` sessions."""
    progress = not args.no_progress
    try:
        sessions, description = load_sessions(settings, args.data, args.synthetic, args.sessions)
    except (DataError, OSError) as exc:
        print(f"nowplaying train: {exc}", file=sys.stderr)
        return 2
    print(f"data: {description}")
    cfg = TrainConfig(
        trees=args.trees,
        leaves=args.leaves,
        seed=args.seed,
        negatives=getattr(args, "negatives", TrainConfig.negatives),
        folds=getattr(args, "folds", TrainConfig.folds),
        threads=getattr(args, "threads", TrainConfig.threads),
        early_stopping_rounds=getattr(
            args, "early_stopping_rounds", TrainConfig.early_stopping_rounds
        ),
        sequence=not getattr(args, "no_sequence", False),
        sequence_epochs=getattr(args, "sequence_epochs", None) or TrainConfig.sequence_epochs,
        ablation=getattr(args, "ablation", False),
        skip_task_model=getattr(args, "skip_task_model", False),
        served_candidates=settings.candidates,
    )
    data_info = {
        "description": description,
        "kind": "synthetic" if args.synthetic else "file",
        "path": None if args.synthetic or args.data is None else str(args.data.resolve()),
        "limit": len(sessions) if args.synthetic else args.sessions,
    }
    model_dir = args.out or settings.model_dir
    started = time.perf_counter()
    try:
        version_dir = train_model(
            sessions,
            model_dir,
            config=cfg,
            data_info=data_info,
            progress=progress,
            evaluate=not getattr(args, "no_eval", False),
            publish=not getattr(args, "no_publish", False),
        )
    except DataError as exc:
        print(f"nowplaying train: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    _print_summary(version_dir, elapsed)
    return 0


def _print_summary(version_dir: Path, elapsed: float) -> None:
    metadata = json.loads((version_dir / METADATA_FILE).read_text(encoding="utf-8"))
    training = metadata["training"]
    latest = latest_version(version_dir.parent) == version_dir.name
    print(f"model: {version_dir}" + (" (latest)" if latest else ""))
    print(
        f"trained in {elapsed:.1f} s on {training['queries']} queries / {training['rows']} rows; "
        f"{metadata['model']['best_iteration']} trees; {len(FEATURE_NAMES)} features "
        f"(version {FEATURE_VERSION})"
    )
    if metadata.get("metrics"):
        evaluation = Evaluation(**metadata["metrics"])
        print(summary_table(evaluation))
        print(f"ONNX vs LightGBM max |diff|: {evaluation.parity_max_abs_diff:.3g}")
        print(f"report: {version_dir / 'report.md'}")
