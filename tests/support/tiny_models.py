"""Tiny real models (LightGBM LambdaRank exported to ONNX) in a registry, for registry and A/B
tests: trained on SYNTHETIC sessions in seconds, never published unless asked."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from models.datasets import synthetic_sessions
from models.train import TrainConfig, train_model

#: Sessions of the synthetic sample the tiny models are trained on.
TINY_SESSIONS = 200


def train_tiny(registry: Path, *, seed: int, trees: int, publish: bool = False) -> Path:
    """Train one tiny model into ``registry``; returns its version folder. Different seeds or
    tree counts give different models (and scores) on the same synthetic sample."""
    config = TrainConfig(
        trees=trees,
        folds=1,
        negatives=10,
        early_stopping_rounds=trees,
        seed=seed,
        workers=1,
        sequence=False,  # the registry and A/B tests need no sequence model
    )
    return train_model(
        synthetic_sessions(TINY_SESSIONS, seed=7),
        registry,
        config=config,
        data_info={"kind": "synthetic", "limit": TINY_SESSIONS},
        publish=publish,
    )


_shared: dict[str, tuple[Path, str, str]] = {}


def shared_two_versions() -> tuple[Path, str, str]:
    """A registry with two tiny versions, trained once per test process (deleted at exit):
    ``latest`` names the first; the second differs (other seed, fewer trees) and is not
    published. Tests must not change it (copy it first)."""
    if "registry" not in _shared:
        folder = Path(tempfile.mkdtemp(prefix="np-test-two-versions-"))
        atexit.register(shutil.rmtree, folder, True)
        first = train_tiny(folder, seed=1, trees=12, publish=True)
        second = train_tiny(folder, seed=2, trees=4)
        _shared["registry"] = (folder, first.name, second.name)
    return _shared["registry"]
