"""The next-track sequence model alone, as a full-catalogue baseline.

:meth:`SequenceModel.fit` trains :mod:`models.sequence` (GRU4Rec-style, JAX; imported only
here, when fitting) on the training sessions it is given, exports it to ONNX and serves it
through :class:`~models.sequence.scorer.SequenceScorer`, the worker's runtime. The catalogue is
ranked by the model's logits; :func:`~models.baselines.base.top_k` excludes the played tracks.

The model reads the outcomes of the earlier plays: :meth:`SequenceModel.propose_state` takes the
session state the stream would hold (the evaluation passes it, see :class:`StateAwareScorer`).
:meth:`SequenceModel.propose` (a prefix of tracks only) marks every outcome unknown.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.artifacts import SessionLike, TrackArtifacts, fit_artifacts
from features.sequence import UNKNOWN_OUTCOME
from features.session import SessionState
from models.baselines.base import I64, Catalogue, Proposal
from models.labelled_sessions import LabelledPlay, Session
from models.sequence.config import SequenceConfig
from models.sequence.scorer import SEQUENCE_MODEL_FILE, SequenceScorer


@dataclass(frozen=True, eq=False)
class SequenceModel:
    scorer: SequenceScorer
    artifacts: TrackArtifacts  # indexed like the catalogue

    @classmethod
    def fit(
        cls,
        sessions: Sequence[SessionLike],
        catalogue: Catalogue,
        *,
        seed: int = 0,
        config: SequenceConfig | None = None,
    ) -> SequenceModel:
        from models.sequence.train import train_sequence_model  # noqa: PLC0415 (jax: fit only)

        artifacts = fit_artifacts(sessions, seed=7)
        if artifacts.track_ids != catalogue.track_ids:
            raise ValueError("the artifacts' tracks differ from the catalogue's")
        model = train_sequence_model(_sessions(sessions), artifacts, seed=seed, config=config)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / SEQUENCE_MODEL_FILE
            model.save_onnx(path)
            scorer = SequenceScorer.load(path, artifacts=artifacts, length=model.config.length)
        return cls(scorer, artifacts)

    def propose_state(self, prefix: I64, state: SessionState) -> Proposal:
        scores = self.scorer.scores([state], self.artifacts)[0]
        return Proposal.dense(scores.astype(np.float64))

    def propose(self, prefix: I64) -> Proposal:
        window = prefix[-self.scorer.length :]
        if len(window) == 0:
            return Proposal.empty()
        tracks = np.zeros((1, self.scorer.length), np.int64)
        outcomes = np.zeros((1, self.scorer.length), np.int64)
        tracks[0, : len(window)] = np.where(window >= 0, window + 1, 0)
        outcomes[0, : len(window)] = UNKNOWN_OUTCOME
        scores = self.scorer.run(tracks, outcomes, np.array([len(window)], np.int64))[0]
        return Proposal.dense(scores.astype(np.float64))


def _sessions(sessions: Sequence[SessionLike]) -> list[Session]:
    """The training sessions as :class:`Session` (ids made up for session-like objects)."""
    return [
        s
        if isinstance(s, Session)
        else Session(
            f"session-{i}",
            "",
            tuple(LabelledPlay(p.track_id, p.outcome) for p in s.plays),  # type: ignore[arg-type]
        )
        for i, s in enumerate(sessions)
    ]
