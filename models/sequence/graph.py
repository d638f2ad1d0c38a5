"""The sequence model as an ONNX graph, built from its numpy weights (onnx + numpy only).

Inputs (int64): ``tracks [B, L]`` and ``outcomes [B, L]`` (codes of :mod:`features.sequence`),
``lengths [B]``. Output ``scores [B, T]``: logits over the artifact tracks after the last real
play of each row. The network, exactly as :mod:`models.sequence.train` computes it:

* step ``t`` reads ``track_embedding[tracks[t]] + outcome_embedding[outcomes[t - 1]]`` (the
  outcome of play ``t - 1`` is known once play ``t`` starts; step 0 reads the padding outcome);
* ONNX ``GRU`` with ``linear_before_reset=1``, gates in ONNX order (z, r, h):
  ``z = sigmoid(x Wz + h Rz + bz)``, ``r = sigmoid(x Wr + h Rr + br)``,
  ``n = tanh(x Wh + bWh + r * (h Rh + bRh))``, ``h' = (1 - z) * n + z * h``;
  ``sequence_lens = max(lengths, 1)`` (an empty row reads one padding token);
* ``scores = h_last @ output + output_bias``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

OPSET: Final = 17
INPUTS: Final = ("tracks", "outcomes", "lengths")
OUTPUT: Final = "scores"

F32 = NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class SequenceWeights:
    """Float32 weights, in the ONNX GRU layout."""

    track_embedding: F32  # [T + 1, D], row 0 the unknown / padding track
    outcome_embedding: F32  # [N_OUTCOME_CODES, D]
    w: F32  # [3H, D]  input weights, gates z, r, h
    r: F32  # [3H, H]  recurrent weights
    wb: F32  # [3H]
    rb: F32  # [3H]
    output: F32  # [H, T]
    output_bias: F32  # [T]

    @property
    def n_tracks(self) -> int:
        return int(self.output.shape[1])

    @property
    def hidden(self) -> int:
        return int(self.r.shape[1])


def build_graph(weights: SequenceWeights) -> onnx.ModelProto:
    def const(name: str, value: NDArray[np.generic]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(value), name)

    h = weights.hidden
    initializers = [
        const("track_embedding", weights.track_embedding.astype(np.float32)),
        const("outcome_embedding", weights.outcome_embedding.astype(np.float32)),
        const("W", weights.w[None].astype(np.float32)),
        const("R", weights.r[None].astype(np.float32)),
        const("B", np.concatenate([weights.wb, weights.rb])[None].astype(np.float32)),
        const("output", weights.output.astype(np.float32)),
        const("output_bias", weights.output_bias.astype(np.float32)),
        const("one", np.array(1, np.int64)),
        const("axis1", np.array([1], np.int64)),
        const("start0", np.array([0], np.int64)),
        const("end_last", np.array([-1], np.int64)),
        const("shift_pads", np.array([0, 1, 0, 0, 0, 0], np.int64)),
        const("axes0", np.array([0], np.int64)),
    ]
    nodes = [
        helper.make_node("Gather", ["track_embedding", "tracks"], ["x_track"]),
        helper.make_node("Gather", ["outcome_embedding", "outcomes"], ["x_outcome"]),
        # outcome of the previous play: drop the last step, pad one zero step in front
        helper.make_node("Slice", ["x_outcome", "start0", "end_last", "axis1"], ["x_prev"]),
        helper.make_node("Pad", ["x_prev", "shift_pads"], ["x_shifted"], mode="constant"),
        helper.make_node("Add", ["x_track", "x_shifted"], ["x_bld"]),
        helper.make_node("Transpose", ["x_bld"], ["x_lbd"], perm=[1, 0, 2]),
        helper.make_node("Max", ["lengths", "one"], ["lengths_1"]),
        helper.make_node("Cast", ["lengths_1"], ["sequence_lens"], to=TensorProto.INT32),
        helper.make_node(
            "GRU",
            ["x_lbd", "W", "R", "B", "sequence_lens"],
            ["", "h_last"],
            hidden_size=h,
            linear_before_reset=1,
        ),
        helper.make_node("Squeeze", ["h_last", "axes0"], ["h"]),
        helper.make_node("MatMul", ["h", "output"], ["logits"]),
        helper.make_node("Add", ["logits", "output_bias"], [OUTPUT]),
    ]
    int_input = [
        helper.make_tensor_value_info(name, TensorProto.INT64, shape)
        for name, shape in zip(
            INPUTS, (["batch", "length"], ["batch", "length"], ["batch"]), strict=True
        )
    ]
    output = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", weights.n_tracks])
    graph = helper.make_graph(nodes, "sequence", int_input, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_graph(weights: SequenceWeights, path: Path) -> None:
    path.write_bytes(build_graph(weights).SerializeToString())
