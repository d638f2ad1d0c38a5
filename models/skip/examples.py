"""The states the skip-risk model learns from and is scored on, built by the stream's own code.

A skip example asks: given what the session has shown, would play ``target`` (0-based) be
skipped early? Its state is folded by :func:`features.session.apply_event` over the records the
stream derives from the session (:func:`models.labelled_sessions.session_records`): both records
(start, end) of the first ``known`` plays, then only the ``track_start`` of the plays up to the
target, whose outcomes are not known yet. Two shapes are used:

* ``online``: ``known = target - 1``, the state right after the ``track_start`` of the play
  before the target: what the worker holds when it ranks what to play next;
* ``half``: ``known = len(plays) // 2`` for every target of the second half: the WSDM Cup 2019
  task (the first half's outcomes are known, the second half's tracks but not their outcomes).

The model's input is the ranker's feature row of (state, target track)
(:func:`features.rows.rows_for_many`, whatever :data:`features.rows.FEATURE_NAMES` holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from features.artifacts import F32, TrackArtifacts
from features.context import state_contexts
from features.rows import N_FEATURES, rows_for_many
from features.session import SessionState, apply_event
from models.labelled_sessions import Session, session_records

Shape = Literal["online", "half"]
SHAPES: Final[tuple[Shape, ...]] = ("online", "half")
#: States whose rows are built in one batch.
_ROW_BATCH: Final = 512


@dataclass(frozen=True, slots=True)
class SkipExample:
    session_id: str
    target: int  # 0-based index of the play whose early skip is predicted
    known: int  # plays whose outcome the state holds (the first ``known``)
    state: SessionState
    track_id: str
    skipped: bool  # the target was skipped early
    length: int  # plays in the session

    @property
    def is_half(self) -> bool:
        """The example belongs to its session's WSDM task (the first half known)."""
        return self.known == self.length // 2 and self.target >= self.known


def known_half(session: Session) -> int:
    """Plays of the first half (their outcomes known): ``len(plays) // 2``."""
    return len(session.plays) // 2


def session_examples(session: Session, shapes: Iterable[Shape] = SHAPES) -> list[SkipExample]:
    """The examples of one session, in (target, known) order, each (target, known) once."""
    plays = session.plays
    n = len(plays)
    wanted: set[tuple[int, int]] = set()
    for shape in shapes:
        if shape == "online":
            wanted.update((j, j - 1) for j in range(1, n))
        else:
            h = known_half(session)
            wanted.update((j, h) for j in range(max(h, 1), n))
    records = session_records(session)
    out: list[SkipExample] = []
    by_known: dict[int, list[int]] = {}
    for target, known in wanted:
        by_known.setdefault(known, []).append(target)
    complete = [SessionState()]  # complete[k]: both records of the first k plays folded
    state = SessionState()
    for i in range(n):
        state = apply_event(apply_event(state, records[2 * i]), records[2 * i + 1])
        complete.append(state)
    for known in sorted(by_known):
        targets = sorted(by_known[known])
        state = complete[known]
        at = known
        for target in targets:
            while at < target:  # the starts of the plays before the target, outcomes unknown
                state = apply_event(state, records[2 * at])
                at += 1
            play = plays[target]
            out.append(
                SkipExample(
                    session.session_id,
                    target,
                    known,
                    state,
                    play.track_id,
                    play.outcome == "skip_early",
                    n,
                )
            )
    out.sort(key=lambda e: (e.target, e.known))
    return out


def example_rows(examples: Sequence[SkipExample], artifacts: TrackArtifacts) -> F32:
    """The feature rows ``[len(examples), N_FEATURES]`` of the examples' (state, track)."""
    out = np.empty((len(examples), N_FEATURES), np.float32)
    for start in range(0, len(examples), _ROW_BATCH):
        chunk = examples[start : start + _ROW_BATCH]
        contexts = state_contexts([e.state for e in chunk], artifacts)
        tracks = [artifacts.indices_of([e.track_id]) for e in chunk]
        out[start : start + len(chunk)] = rows_for_many(contexts, tracks, artifacts)
    return out


def labels_of(examples: Sequence[SkipExample]) -> np.ndarray:
    return np.array([e.skipped for e in examples], dtype=np.int32)
