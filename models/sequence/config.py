"""Hyper-parameters of the next-track sequence model (no jax: the graph builder reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from features.sequence import SEQUENCE_LENGTH


@dataclass(frozen=True)
class SequenceConfig:
    """GRU4Rec-style model: a GRU over (track + previous outcome) tokens, full softmax output."""

    length: int = SEQUENCE_LENGTH
    embedding_dim: int = 64
    hidden: int = 64
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 0.01
    #: Weight of a target by the outcome of that next play (listened, late skip, early skip).
    target_weights: dict[str, float] = field(
        default_factory=lambda: {"listened": 1.0, "skip_late": 1.0, "skip_early": 1.0}
    )
    #: Share of input tracks replaced by the unknown-track code while training, so that code
    #: (a track the artifacts do not know) gets a learned embedding.
    unknown_track_rate: float = 0.02
    #: Share of earlier plays' outcomes replaced by "unknown" (an end that never arrived).
    unknown_outcome_rate: float = 0.02
    grad_clip: float = 5.0

    def to_json(self) -> dict[str, object]:
        return {
            "length": self.length,
            "embedding_dim": self.embedding_dim,
            "hidden": self.hidden,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "target_weights": dict(self.target_weights),
            "unknown_track_rate": self.unknown_track_rate,
            "unknown_outcome_rate": self.unknown_outcome_rate,
            "grad_clip": self.grad_clip,
        }
