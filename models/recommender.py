"""The recommender the stream worker calls per batch: session states in, top-K lists out.

Loaded once from a model version folder (``model.onnx``, ``metadata.json``, track artifacts and,
when the version has one, the sequence model ``sequence.onnx``). For a batch of states it runs
the sequence model once (one ONNX call: a score for every track and state), generates each
state's candidates (:mod:`features.candidates`), builds their feature rows (:mod:`features.rows`)
and scores ALL rows of the batch in ONE onnxruntime call.

Lists are deterministic: sorted by score descending, ties broken by track id, so recomputing from
the same state gives the identical list. ``Recommendation.source`` names the generator that
proposed the track (:data:`features.candidates.SOURCES`: ``ngram``, ``colisten``, ``sequence``,
``knn``, ``two_step``, ``taste`` or ``popular``; a new session, or one whose tracks the model does
not know, gets popular tracks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import onnxruntime as ort

from features.artifacts import F32, TrackArtifacts
from features.candidates import (
    DEFAULT_CANDIDATES,
    SOURCES,
    Candidates,
    generate_candidates_many,
)
from features.context import StateContext, state_contexts
from features.rows import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES, rows_for_many
from features.session import SessionState
from models.export import onnx_input_width, onnx_scores, onnx_session
from models.registry import METADATA_FILE, MODEL_FILE
from nowplaying import metrics
from nowplaying.events import Recommendation

if TYPE_CHECKING:
    from nowplaying.settings import Settings

#: The sequence model of a version folder (models.sequence.scorer.SEQUENCE_MODEL_FILE).
SEQUENCE_FILE: Final = "sequence.onnx"


class SequenceScores(Protocol):
    """The sequence model seam: a score for every track, one row per state (one ONNX call)."""

    def scores(self, states: Sequence[SessionState], artifacts: TrackArtifacts) -> F32: ...


class ModelMismatchError(ValueError):
    """The model version was built for other features than this code computes."""


@dataclass(frozen=True, slots=True, eq=False)
class Scored:
    """One state's candidates with their ranker scores (and rows, when asked for)."""

    context: StateContext
    candidates: Candidates
    scores: F32
    rows: F32 | None = None


class Recommender:
    model_version: str
    feature_version: str

    def __init__(
        self,
        session: ort.InferenceSession,
        artifacts: TrackArtifacts,
        metadata: dict[str, Any],
        *,
        candidates: int = DEFAULT_CANDIDATES,
        sequence: SequenceScores | None = None,
    ) -> None:
        check_metadata(metadata)
        width = onnx_input_width(session)
        if isinstance(width, int) and width != N_FEATURES:
            raise ModelMismatchError(f"ONNX input has {width} features; code has {N_FEATURES}")
        self.session = session
        self.artifacts = artifacts
        self.metadata = metadata
        self.candidates = candidates
        self.sequence = sequence
        self.model_version = str(metadata["version"])
        self.feature_version = str(metadata["feature_version"])
        self._track_ids = np.array(artifacts.track_ids, dtype=object)

    @classmethod
    def load(
        cls, version_dir: Path, *, intra_op_threads: int = 1, candidates: int = DEFAULT_CANDIDATES
    ) -> Recommender:
        """Load a version folder: checks the metadata's features against this code first."""
        metadata = json.loads((version_dir / METADATA_FILE).read_text(encoding="utf-8"))
        check_metadata(metadata)
        artifacts = TrackArtifacts.load(version_dir)
        session = onnx_session(version_dir / MODEL_FILE, intra_op_threads)
        sequence = load_sequence(version_dir, intra_op_threads)
        return cls(session, artifacts, metadata, candidates=candidates, sequence=sequence)

    @classmethod
    def served(cls, version_dir: Path, settings: Settings) -> Recommender:
        """The version as the worker serves it: ``NP_CANDIDATES`` candidates per state and
        ``NP_ORT_INTRA_OP_THREADS`` onnxruntime threads (the offline evaluations use it too, so
        they score what is served)."""
        return cls.load(
            version_dir,
            intra_op_threads=settings.ort_intra_op_threads,
            candidates=settings.candidates,
        )

    def score(
        self,
        states: Sequence[SessionState],
        *,
        keep_rows: bool = False,
        extend: Callable[[Sequence[StateContext], list[Candidates]], list[Candidates]]
        | None = None,
    ) -> list[Scored]:
        """Candidates and scores for each state; one onnxruntime call for the whole batch (and
        one of the sequence model, when there is one). ``extend`` may add candidates to each
        state's (``models.steered``) before the rows."""
        sequence = self.sequence.scores(states, self.artifacts) if self.sequence else None
        contexts = state_contexts(states, self.artifacts, sequence)
        cands = generate_candidates_many(contexts, self.artifacts, self.candidates)
        if extend is not None:
            cands = extend(contexts, cands)
        for k in cands:
            metrics.CANDIDATES.observe(len(k))
        rows = rows_for_many(contexts, [k.tracks for k in cands], self.artifacts)
        scores = self._run(rows) if len(rows) else np.empty(0, np.float32)
        out = []
        start = 0
        for ctx, k in zip(contexts, cands, strict=True):
            end = start + len(k)
            part = rows[start:end] if keep_rows else None
            out.append(Scored(ctx, k, scores[start:end], part))
            start = end
        return out

    def recommend(self, states: Sequence[SessionState], k: int) -> list[list[Recommendation]]:
        """Top-``k`` lists, one per state, best first."""
        return self.top_k(self.score(states), k)

    def top_k(self, scored: Sequence[Scored], k: int) -> list[list[Recommendation]]:
        """Each state's ``k`` best candidates, by score (ties: track id)."""
        if not scored:
            return []
        # Track indices follow track id order, so this breaks score ties by track id.
        picked, ends, start = [], [], 0
        for s in scored:
            picked.append(np.lexsort((s.candidates.tracks, -s.scores))[:k] + start)
            start += len(s.scores)
            ends.append(len(picked[-1]))
        at = np.concatenate(picked)
        tracks = np.concatenate([s.candidates.tracks for s in scored])[at]
        ids = self._track_ids[tracks].tolist()
        scores = np.concatenate([s.scores for s in scored])[at].tolist()
        sources = np.concatenate([s.candidates.sources for s in scored])[at].tolist()
        out, i = [], 0
        for count in ends:
            out.append(
                [
                    Recommendation(
                        track_id=ids[j], score=scores[j], rank=j - i + 1, source=SOURCES[sources[j]]
                    )
                    for j in range(i, i + count)
                ]
            )
            i += count
        return out

    def _run(self, rows: F32) -> F32:
        started = time.perf_counter()
        scores = onnx_scores(self.session, rows)
        metrics.INFERENCE.observe(time.perf_counter() - started)
        metrics.INFERENCE_ROWS.observe(len(rows))
        return scores


def load_sequence(version_dir: Path, intra_op_threads: int = 1) -> SequenceScores | None:
    """The version's sequence model (``sequence.onnx``), or None when it has none."""
    path = version_dir / SEQUENCE_FILE
    if not path.exists():
        return None
    from models.sequence.scorer import SequenceScorer  # noqa: PLC0415 - only with the file

    scorer: SequenceScores = SequenceScorer.load(path, intra_op_threads=intra_op_threads)
    return scorer


def check_metadata(metadata: dict[str, Any]) -> None:
    """Raise :class:`ModelMismatchError` unless the model was built for this code's features."""
    version = metadata.get("feature_version")
    if version != FEATURE_VERSION:
        raise ModelMismatchError(
            f"model {metadata.get('version')!r} has feature version {version!r}; this code "
            f"computes version {FEATURE_VERSION!r}: retrain with `nowplaying train`"
        )
    names = tuple(metadata.get("feature_names", ()))
    if names != FEATURE_NAMES:
        raise ModelMismatchError(
            f"model {metadata.get('version')!r} lists features {list(names)}; this code "
            f"computes {list(FEATURE_NAMES)}"
        )
