"""The skip-risk model served: ``skip.onnx`` of a model version, one onnxruntime call per batch.

Its input is the ranker's feature rows (``features [N, F]``, the same columns, in
:data:`features.rows.FEATURE_NAMES` order); its output ``probabilities [N, 2]``, of which column
1 is the probability that the track is skipped early if it plays next.

The skip model is trained on rows built without the sequence model (its columns,
:data:`features.rows.SEQUENCE_FEATURES`, are zeros there: :mod:`models.skip.examples`), so
:meth:`SkipRiskModel.risk` zeroes those columns of the served rows too: the model sees in the
stream exactly the kind of rows it was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnxruntime as ort

from features.artifacts import F32
from features.rows import FEATURE_NAMES, FEATURE_VERSION, SEQUENCE_FEATURES
from models.export import INPUT_NAME, onnx_input_width, onnx_session
from models.recommender import ModelMismatchError

SKIP_MODEL_FILE: Final = "skip.onnx"
#: LightGBM's own text model of the skip booster.
SKIP_LIGHTGBM_FILE: Final = "skip_lightgbm.txt"
#: What was trained, how, and its figures (feature names, threshold, parity, evaluation).
SKIP_METADATA_FILE: Final = "skip.json"
OUTPUT_NAME: Final = "probabilities"
#: Row columns the skip model does not use (zero in its training rows, zeroed when served).
UNUSED_COLUMNS: Final = [FEATURE_NAMES.index(n) for n in SEQUENCE_FEATURES]


class SkipRiskModel:
    """Probabilities of an early skip for feature rows, one onnxruntime call per call."""

    def __init__(self, session: ort.InferenceSession, metadata: dict[str, Any]) -> None:
        check_skip_metadata(metadata)
        width = onnx_input_width(session)
        if isinstance(width, int) and width != len(FEATURE_NAMES):
            raise ModelMismatchError(
                f"skip model input has {width} features; code has {len(FEATURE_NAMES)}"
            )
        self.session = session
        self.metadata = metadata
        #: the probability at and above which a track is predicted skipped (chosen on the
        #: validation split)
        self.threshold = float(metadata.get("threshold", 0.5))

    @classmethod
    def load(cls, version_dir: Path, *, intra_op_threads: int = 1) -> SkipRiskModel | None:
        """The version's skip model, or None when the version has none."""
        path = version_dir / SKIP_MODEL_FILE
        if not path.is_file():
            return None
        metadata = json.loads((version_dir / SKIP_METADATA_FILE).read_text(encoding="utf-8"))
        return cls(onnx_session(path, intra_op_threads), metadata)

    def risk(self, rows: F32) -> F32:
        """``[N]`` early-skip probabilities of rows ``[N, F]``."""
        if len(rows) == 0:
            return np.empty(0, np.float32)
        if rows[:, UNUSED_COLUMNS].any():
            rows = rows.copy()
            rows[:, UNUSED_COLUMNS] = 0.0
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: rows})[0]
        risk: F32 = np.asarray(out, dtype=np.float32)[:, 1].copy()
        return risk


def check_skip_metadata(metadata: dict[str, Any]) -> None:
    if metadata.get("feature_version") != FEATURE_VERSION or tuple(
        metadata.get("feature_names", ())
    ) != tuple(FEATURE_NAMES):
        raise ModelMismatchError(
            "the skip model was built for other features than this code computes: retrain "
            "with `nowplaying train`"
        )
