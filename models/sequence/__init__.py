"""The next-track sequence model (GRU4Rec-style): served through ONNX, trained with JAX.

* :mod:`models.sequence.scorer`: :class:`SequenceScorer` (onnxruntime + numpy), what the
  worker and the API may use;
* :mod:`models.sequence.train`: ``train_sequence_model`` (JAX + optax, the ``train`` extra);
  import it explicitly, only where training happens;
* :mod:`models.sequence.graph`: the ONNX graph of the network; :mod:`models.sequence.config`.
"""

from __future__ import annotations

from models.sequence.config import SequenceConfig
from models.sequence.scorer import SEQUENCE_MODEL_FILE, SequenceModelError, SequenceScorer

__all__ = ["SEQUENCE_MODEL_FILE", "SequenceConfig", "SequenceModelError", "SequenceScorer"]
