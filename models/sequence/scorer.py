"""Serving the next-track sequence model: its ONNX graph through onnxruntime (numpy only).

:meth:`SequenceScorer.scores` turns session states into the model's inputs with the one feature
path (:func:`features.sequence.sequence_inputs`) and runs ONE onnxruntime call per batch: logits
``[len(states), n_tracks]``, column = artifact track index. :meth:`SequenceScorer.load` checks
the graph's inputs and output against the artifacts it will be used with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime as ort

from features.artifacts import F32, TrackArtifacts
from features.sequence import SEQUENCE_LENGTH, sequence_inputs
from features.session import SessionState
from models.sequence.graph import INPUTS, OUTPUT

SEQUENCE_MODEL_FILE: Final = "sequence.onnx"


class SequenceModelError(ValueError):
    """The ONNX file is not a sequence model of the expected shape."""


class SequenceScorer:
    def __init__(self, session: ort.InferenceSession, n_tracks: int, length: int) -> None:
        self._session = session
        self.n_tracks = n_tracks
        self.length = length

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        intra_op_threads: int = 1,
        artifacts: TrackArtifacts | None = None,
        length: int = SEQUENCE_LENGTH,
    ) -> SequenceScorer:
        """Open the graph; with ``artifacts``, require one output column per artifact track."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = session.get_outputs()
        if set(inputs) != set(INPUTS) or [o.name for o in outputs] != [OUTPUT]:
            raise SequenceModelError(
                f"{path}: inputs {sorted(inputs)} / outputs {[o.name for o in outputs]}, "
                f"expected {list(INPUTS)} / [{OUTPUT!r}]"
            )
        for name in INPUTS:
            if inputs[name].type != "tensor(int64)":
                raise SequenceModelError(f"{path}: input {name} is {inputs[name].type}, not int64")
        width = outputs[0].shape[-1]
        if not isinstance(width, int):
            raise SequenceModelError(f"{path}: the output width is not fixed ({width!r})")
        if artifacts is not None and width != artifacts.n_tracks:
            raise SequenceModelError(
                f"{path}: the model scores {width} tracks, the artifacts hold "
                f"{artifacts.n_tracks}: it was trained with other artifacts"
            )
        return cls(session, width, length)

    def scores(self, states: Sequence[SessionState], artifacts: TrackArtifacts) -> F32:
        """Logits ``[len(states), n_tracks]`` (column = artifact track index)."""
        if artifacts.n_tracks != self.n_tracks:
            raise SequenceModelError(
                f"the model scores {self.n_tracks} tracks, the artifacts hold {artifacts.n_tracks}"
            )
        if not states:
            return np.zeros((0, self.n_tracks), np.float32)
        tracks, outcomes, lengths = sequence_inputs(states, artifacts, self.length)
        return self.run(tracks, outcomes, lengths)

    def run(self, tracks: np.ndarray, outcomes: np.ndarray, lengths: np.ndarray) -> F32:
        """The graph on encoded inputs (:func:`features.sequence.sequence_inputs`' arrays)."""
        if len(tracks) == 0:
            return np.zeros((0, self.n_tracks), np.float32)
        feed = {"tracks": tracks, "outcomes": outcomes, "lengths": lengths}
        (out,) = self._session.run([OUTPUT], {k: v.astype(np.int64) for k, v in feed.items()})
        return np.asarray(out, dtype=np.float32)
