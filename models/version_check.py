"""Checks a model version must pass before a running worker swaps it in.

At training time a few feature rows and LightGBM's scores for them are stored next to the
model (``parity.npz``: :func:`save_parity_sample`). Before a worker serves a version it loads it
through :meth:`models.recommender.Recommender.load` (the feature version and feature names are
checked there, and the ONNX input width when the graph is built) and recomputes those scores
through the loaded graph (:func:`load_checked`): a graph that is corrupt, built for other
features, of another input width or scoring differently is refused, with the reason as data
(:class:`VersionRefusedError`). A version trained before rows were stored is checked against its
``lightgbm.txt`` on rows drawn at random (seeded), when it has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from features.artifacts import F32
from features.rows import N_FEATURES
from models.export import onnx_input_width, onnx_scores
from models.recommender import ModelMismatchError, Recommender
from models.registry import LIGHTGBM_FILE, ModelNotFoundError, resolve_version_dir

PARITY_FILE: Final = "parity.npz"
#: Rows stored per version.
PARITY_ROWS: Final = 64
#: Largest accepted |ONNX score - stored score|.
PARITY_TOLERANCE: Final = 1e-4

Refusal = Literal["not_found", "load_failed", "feature_mismatch", "parity_failed"]


class VersionRefusedError(Exception):
    """The version must not be served: ``kind`` (a metric label) and a readable reason."""

    def __init__(self, kind: Refusal, reason: str) -> None:
        super().__init__(reason)
        self.kind: Refusal = kind
        self.reason = reason


def save_parity_sample(version_dir: Path, booster: Any, rows: F32) -> None:
    """Store up to :data:`PARITY_ROWS` rows (evenly spread over ``rows``) and the LightGBM
    ``booster``'s scores for them in ``version_dir``."""
    if len(rows) == 0:
        return
    picked = np.ascontiguousarray(
        rows[np.linspace(0, len(rows) - 1, min(PARITY_ROWS, len(rows))).astype(int)],
        dtype=np.float32,
    )
    scores = np.asarray(booster.predict(picked, num_threads=1), dtype=np.float64)
    np.savez(version_dir / PARITY_FILE, rows=picked, scores=scores)


def stored_parity(version_dir: Path) -> tuple[F32, np.ndarray] | None:
    """The stored rows and expected scores; else rows drawn at random and ``lightgbm.txt``'s
    scores for them; None when the version has neither."""
    path = version_dir / PARITY_FILE
    if path.is_file():
        with np.load(path) as data:
            return np.asarray(data["rows"], dtype=np.float32), np.asarray(data["scores"])
    text = version_dir / LIGHTGBM_FILE
    if not text.is_file():
        return None
    import lightgbm as lgb  # noqa: PLC0415 (only for versions without stored rows)

    booster = lgb.Booster(model_file=str(text))
    rows = np.random.default_rng(0).random((PARITY_ROWS, N_FEATURES), dtype=np.float32)
    return rows, np.asarray(booster.predict(rows, num_threads=1))


def check_parity(recommender: Recommender, version_dir: Path) -> str:
    """Raise :class:`VersionRefusedError` unless the graph reproduces the stored scores; returns
    what was checked."""
    sample = stored_parity(version_dir)
    if sample is None:
        return "no stored rows to check"
    rows, expected = sample
    if rows.ndim != 2 or rows.shape[1] != N_FEATURES:
        raise VersionRefusedError(
            "feature_mismatch", f"stored rows have shape {rows.shape}; code has {N_FEATURES}"
        )
    try:
        got = onnx_scores(recommender.session, rows).astype(np.float64)
    except Exception as exc:  # a graph that does not run is refused like one that differs
        raise VersionRefusedError("load_failed", f"the graph does not score: {exc}") from None
    if got.shape != expected.shape:
        shapes = f"{got.shape} scores for {expected.shape} expected"
        raise VersionRefusedError("parity_failed", shapes)
    diff = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    if not diff <= PARITY_TOLERANCE:
        raise VersionRefusedError(
            "parity_failed",
            f"scores differ from the stored ones by up to {diff:.3g} (limit {PARITY_TOLERANCE})",
        )
    return f"{len(rows)} stored rows reproduced (max |diff| {diff:.2g})"


def load_checked(
    model_dir: Path, version: str, *, intra_op_threads: int = 1, candidates: int = 200
) -> tuple[Recommender, str]:
    """Load ``version`` of the registry and check it; returns it and what was checked.
    Raises :class:`VersionRefusedError`."""
    try:
        version_dir = resolve_version_dir(model_dir, version)
    except ModelNotFoundError as exc:
        raise VersionRefusedError("not_found", str(exc)) from None
    try:
        recommender = Recommender.load(
            version_dir, intra_op_threads=intra_op_threads, candidates=candidates
        )
    except ModelMismatchError as exc:
        raise VersionRefusedError("feature_mismatch", str(exc)) from None
    except Exception as exc:  # a corrupt graph, artifacts or metadata
        raise VersionRefusedError("load_failed", f"{type(exc).__name__}: {exc}") from None
    width = onnx_input_width(recommender.session)
    if width != N_FEATURES:
        reason = f"ONNX input width {width}; code has {N_FEATURES}"
        raise VersionRefusedError("feature_mismatch", reason)
    return recommender, check_parity(recommender, version_dir)
