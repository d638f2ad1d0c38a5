"""ONNX export of the LightGBM ranker and the onnxruntime session that serves it.

The graph has one float32 input ``features`` of shape ``[N, F]`` (F = number of features) and
one output ``variable`` of shape ``[N, 1]``: the ranker's raw scores. The target opset is pinned
(:data:`TARGET_OPSET`); the opsets actually written are recorded in the model's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import onnxmltools
import onnxruntime as ort
from onnxmltools.convert.common.data_types import FloatTensorType

from features.artifacts import F32

#: Highest opset onnxmltools 1.16's LightGBM converter accepts; pinned for reproducible graphs.
TARGET_OPSET: Final = 15
INPUT_NAME: Final = "features"


def export_onnx(model: lgb.Booster | lgb.LGBMRanker, n_features: int, path: Path) -> dict[str, int]:
    """Write the ranker as ONNX to ``path``; returns the graph's opsets by domain."""
    onx = onnxmltools.convert_lightgbm(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )
    path.write_bytes(onx.SerializeToString())
    return {(op.domain or "ai.onnx"): int(op.version) for op in onx.opset_import}


def onnx_session(path: Path, intra_op_threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session with deliberate options: ``intra_op_threads`` threads per call
    (0: onnxruntime's default), one inter-op thread, sequential execution, all graph
    optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_input_width(session: ort.InferenceSession) -> Any:
    """The declared feature count of the session's input (an int, or a symbol/None)."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ValueError(f"expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}")
    shape = inputs[0].shape
    return shape[1] if len(shape) == 2 else None


def onnx_scores(session: ort.InferenceSession, rows: F32) -> F32:
    """Scores ``[N]`` for rows ``[N, F]`` (one onnxruntime call)."""
    out = session.run(None, {INPUT_NAME: rows})[0]
    scores: F32 = np.asarray(out, dtype=np.float32).reshape(-1)
    return scores
