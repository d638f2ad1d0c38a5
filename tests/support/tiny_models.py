"""Tiny real models (LightGBM LambdaRank exported to ONNX) in a registry, for registry and A/B
tests: trained on SYNTHETIC sessions in seconds, never published unless asked."""

from __future__ import annotations

from pathlib import Path

from models.datasets import synthetic_sessions
from models.train import TrainConfig, train_model

#: Sessions of the synthetic sample the tiny models are trained on.
TINY_SESSIONS = 200


def train_tiny(registry: Path, *, seed: int, trees: int, publish: bool = False) -> Path:
    """Train one tiny model into ``registry``; returns its version folder. Different seeds or
    tree counts give different models (and scores) on the same synthetic sample."""
    config = TrainConfig(
        trees=trees, folds=1, negatives=10, early_stopping_rounds=trees, seed=seed, workers=1
    )
    return train_model(
        synthetic_sessions(TINY_SESSIONS, seed=7),
        registry,
        config=config,
        data_info={"kind": "synthetic", "limit": TINY_SESSIONS},
        publish=publish,
    )
