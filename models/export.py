"""ONNX export of the LightGBM ranker and the onnxruntime session that serves it.

The graph has one float32 input ``features`` of shape ``[N, F]`` (F = number of features) and
one output ``variable`` of shape ``[N, 1]``: the ranker's raw scores. The target opset is pinned
(:data:`TARGET_OPSET`); the opsets actually written are recorded in the model's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import onnxruntime as ort

from features.artifacts import F32

if TYPE_CHECKING:  # the converter stack is heavy; serving never converts, so import it lazily
    import lightgbm as lgb
    import onnx

#: Highest opset onnxmltools 1.16's LightGBM converter accepts; pinned for reproducible graphs.
TARGET_OPSET: Final = 15
INPUT_NAME: Final = "features"


def export_onnx(booster: lgb.Booster, n_features: int, path: Path) -> dict[str, int]:
    """Write the ranker as ONNX to ``path``; returns the graph's opsets by domain."""
    import onnxmltools  # noqa: PLC0415 (heavy; only training converts)
    from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: PLC0415

    onx = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )
    exact_float32_thresholds(onx, booster)
    path.write_bytes(onx.SerializeToString())
    return {(op.domain or "ai.onnx"): int(op.version) for op in onx.opset_import}


#: The tree ensemble ops LightGBM converts to: a ranker (regressor) or a binary classifier.
_TREE_ENSEMBLES: Final = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")


def exact_float32_thresholds(onx: onnx.ModelProto, booster: lgb.Booster) -> None:
    """Make the ONNX splits take exactly LightGBM's branches on float32 inputs.

    LightGBM compares ``x <= t`` in double precision; the ONNX tree ensemble stores ``t`` as the
    NEAREST float32 and compares in float32, so an input between ``t`` and its rounded value
    goes the other way (LightGBM likes thresholds right next to training values, so it happens).
    For a float32 ``x``, ``x <= t`` holds exactly when ``x <= t'`` with ``t'`` the largest
    float32 not above ``t``: each threshold is replaced by that value.
    """
    ensemble = next(n for n in onx.graph.node if n.op_type in _TREE_ENSEMBLES)
    attrs = {a.name: a for a in ensemble.attribute}
    splits = _splits_by_node(booster)
    values = list(attrs["nodes_values"].floats)
    nodes = zip(
        attrs["nodes_treeids"].ints,
        attrs["nodes_nodeids"].ints,
        attrs["nodes_featureids"].ints,
        attrs["nodes_modes"].strings,
        strict=True,
    )
    replaced = 0
    for i, (tree, node, feature, mode) in enumerate(nodes):
        if mode == b"LEAF":
            continue
        split = splits.get((tree, node))
        if split is None or mode != b"BRANCH_LEQ" or split[0] != feature:
            raise RuntimeError(f"ONNX split {tree}/{node} does not match the LightGBM model")
        if np.float32(values[i]) != np.float32(split[1]):
            raise RuntimeError(f"ONNX split {tree}/{node} has another threshold than LightGBM")
        values[i] = float(_float32_at_most(split[1]))
        replaced += 1
    if replaced != len(splits):
        raise RuntimeError(f"ONNX has {replaced} splits, LightGBM {len(splits)}")
    del attrs["nodes_values"].floats[:]
    attrs["nodes_values"].floats.extend(values)


def _splits_by_node(booster: lgb.Booster) -> dict[tuple[int, int], tuple[int, float]]:
    """(tree, node id) -> (feature, threshold), with the converter's node ids: the root is 0,
    and a split gives its left and right children the next two ids before either subtree is
    numbered (left subtree first)."""
    out: dict[tuple[int, int], tuple[int, float]] = {}
    for tree_id, tree in enumerate(booster.dump_model()["tree_info"]):
        next_id = 1
        stack: list[tuple[dict[str, Any], int]] = [(tree["tree_structure"], 0)]
        while stack:
            node, node_id = stack.pop()
            if "left_child" not in node:
                continue
            out[(tree_id, node_id)] = (int(node["split_feature"]), float(node["threshold"]))
            left, right = next_id, next_id + 1
            next_id += 2
            stack.append((node["right_child"], right))
            stack.append((node["left_child"], left))
    return out


def _float32_at_most(value: float) -> np.float32:
    """The largest float32 that is not above ``value``."""
    nearest = np.float32(value)
    if float(nearest) > value:
        below: np.float32 = np.nextafter(nearest, np.float32(-np.inf))
        return below
    return nearest


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
