"""Ranking queries: the point-in-time (session, position) prefixes that training and evaluation use.

Point-in-time rule (the same online and offline): the stream ranks when a ``track_start``
arrives, and the list answers "what to play next". So the query at position ``p`` (1-based) is the
session state right after the ``track_start`` of play ``p``: play ``p`` is the current track, its
outcome is not known yet, and plays ``p+1...`` are unseen. The target is play ``p+1``, with
the graded label :data:`GAIN` of its outcome. The state is folded by
:func:`features.session.apply_event` over the records the stream derives from the session's play
events (:func:`models.labelled_sessions.session_records`, equal to ``to_session_event`` of each
of :func:`models.labelled_sessions.session_events`), exactly as the stream folds the Redis
session log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from features.artifacts import F32, I32, TrackArtifacts
from features.candidates import generate_candidates_many
from features.context import state_contexts
from features.rows import N_FEATURES, rows_for_many
from features.session import Outcome, SessionState, apply_event
from models.labelled_sessions import Session, session_records

#: Queries whose rows are built in one batch.
_ROW_BATCH: Final = 256
#: Graded relevance of the actual next track: listened 2, skipped late 1, skipped early 0.
GAIN: Final[dict[Outcome, int]] = {"listened": 2, "skip_late": 1, "skip_early": 0}
#: The ranker's training label of the actual next track: EVERY next track is positive (served
#: hit rate and MRR count every next track), listened above late above early skips; the
#: generator's other candidates are 0.
LABEL: Final[dict[Outcome, int]] = {"listened": 3, "skip_late": 2, "skip_early": 1}


@dataclass(frozen=True, slots=True)
class Query:
    session_id: str
    position: int  # 1-based: play ``position`` has just started
    state: SessionState  # after that play's track_start
    next_track: str
    next_outcome: Outcome

    @property
    def gain(self) -> int:
        return GAIN[self.next_outcome]

    @property
    def label(self) -> int:
        return LABEL[self.next_outcome]


def session_queries(session: Session) -> Iterator[Query]:
    """One query per play that has a successor, in play order."""
    state = SessionState()
    plays = session.plays
    position = 0
    for record in session_records(session):
        state = apply_event(state, record)
        if record.kind == "start":
            position += 1
            if position < len(plays):
                nxt = plays[position]
                yield Query(session.session_id, position, state, nxt.track_id, nxt.outcome)


@dataclass(frozen=True, slots=True, eq=False)
class RankingData:
    """Rows of many queries, grouped: ``groups[i]`` consecutive rows belong to query ``i``."""

    rows: F32  # [R, N_FEATURES]
    labels: np.ndarray  # int32 [R]
    groups: np.ndarray  # int32 [Q]
    tracks: I32  # [R] candidate track index
    keys: list[tuple[str, int]]  # (session_id, position) per query

    @property
    def n_queries(self) -> int:
        return len(self.groups)


def training_data(
    queries: Sequence[Query],
    artifacts: TrackArtifacts,
    *,
    negatives: int | None,
    candidates: int,
    seed: int,
    max_queries: int | None = None,
    per_session: int | None = None,
    sequence: Callable[[Sequence[Query]], F32] | None = None,
    hard_negatives: int = 0,
    every_next: bool = True,
    negative_pool: int | None = None,
) -> RankingData:
    """Rows for the queries whose next track can be recommended.

    Candidates come from the generator plus the actual next track (label :data:`LABEL`, all
    others 0; with ``every_next`` False: label ``gain``, and early-skipped next tracks left out).
    With ``negatives`` set, only that many generator candidates are kept besides the positive:
    the first ``hard_negatives`` of the generator's list (its strongest proposals: n-gram
    continuations, then the best co-listen scores), the rest sampled (seeded) from the others
    (from its first ``negative_pool`` only, when set).
    Queries whose next track is unknown to the artifacts, was already played in the session
    (never recommended) are left out.
    ``per_session`` keeps at most that many of a session's queries (sampled, seeded);
    ``max_queries`` stops after that many queries. ``sequence`` gives the sequence model's
    scores ``[len(chunk), artifacts.n_tracks]`` of a chunk of queries (None: no sequence model).
    """
    rng = np.random.default_rng(seed)
    parts_rows: list[F32] = []
    parts_labels: list[np.ndarray] = []
    parts_tracks: list[I32] = []
    keys: list[tuple[str, int]] = []
    eligible = _eligible(queries, artifacts, per_session, rng, every_next)[:max_queries]
    # Contexts, candidates and rows a chunk of queries at a time (the batch feature code the
    # stream worker runs; contexts are large, so only one chunk's are held).
    for start in range(0, len(eligible), _ROW_BATCH):
        chunk = eligible[start : start + _ROW_BATCH]
        scores = sequence(chunk) if sequence is not None else None
        contexts = state_contexts([q.state for q in chunk], artifacts, scores)
        generated = generate_candidates_many(contexts, artifacts, candidates)
        chunk_tracks: list[I32] = []
        for query, cands in zip(chunk, generated, strict=True):
            positive = artifacts.index[query.next_track]
            others = cands.tracks[cands.tracks != positive]
            if negatives is not None and len(others) > negatives:
                hard = min(hard_negatives, negatives)
                rest = others[hard : max(negative_pool or len(others), negatives)]
                others = np.concatenate(
                    [others[:hard], rest[rng.permutation(len(rest))[: negatives - hard]]]
                )
                others = others[rng.permutation(len(others))]
            # The positive goes to a random place among the (randomly ordered) negatives.
            at = int(rng.integers(0, len(others) + 1))
            tracks = np.insert(others, at, positive).astype(np.int32)
            labels = np.zeros(len(tracks), np.int32)
            labels[at] = query.label if every_next else query.gain
            parts_labels.append(labels)
            chunk_tracks.append(tracks)
            keys.append((query.session_id, query.position))
        parts_tracks += chunk_tracks
        parts_rows.append(rows_for_many(contexts, chunk_tracks, artifacts))
    groups = [len(t) for t in parts_tracks]
    return _stack(parts_rows, parts_labels, parts_tracks, groups, keys)


def _eligible(
    queries: Sequence[Query],
    artifacts: TrackArtifacts,
    per_session: int | None,
    rng: np.random.Generator,
    every_next: bool,
) -> list[Query]:
    """Queries with a recommendable next track (with a positive gain unless ``every_next``);
    at most ``per_session`` of each session's (queries arrive session by session)."""
    kept: list[Query] = []
    session: list[Query] = []
    for query in [*queries, None]:
        if session and (query is None or query.session_id != session[0].session_id):
            if per_session is not None and len(session) > per_session:
                chosen = np.sort(rng.choice(len(session), per_session, replace=False))
                session = [session[i] for i in chosen]
            kept += session
            session = []
        if query is None:
            break
        if (
            (every_next or query.gain > 0)
            and query.next_track in artifacts.index
            and query.next_track not in query.state.played
        ):
            session.append(query)
    return kept


def _stack(
    rows: list[F32],
    labels: list[np.ndarray],
    tracks: list[I32],
    groups: list[int],
    keys: list[tuple[str, int]],
) -> RankingData:
    if not rows:
        return RankingData(
            np.empty((0, N_FEATURES), np.float32),
            np.empty(0, np.int32),
            np.empty(0, np.int32),
            np.empty(0, np.int32),
            [],
        )
    return RankingData(
        np.concatenate(rows),
        np.concatenate(labels),
        np.array(groups, np.int32),
        np.concatenate(tracks),
        keys,
    )
