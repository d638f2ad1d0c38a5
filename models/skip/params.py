"""The LightGBM parameters both skip models train with (the served one and the offline WSDM
evaluation model): binary objective, bagging, deterministic row-wise training."""

from __future__ import annotations

from typing import Any, Protocol


class BoosterConfig(Protocol):
    @property
    def leaves(self) -> int: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def min_child_samples(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def seed(self) -> int: ...


def binary_params(cfg: BoosterConfig, *, feature_fraction: float) -> dict[str, Any]:
    return {
        "objective": "binary",
        "num_leaves": cfg.leaves,
        "learning_rate": cfg.learning_rate,
        "min_child_samples": cfg.min_child_samples,
        "feature_fraction": feature_fraction,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "num_threads": cfg.threads,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
