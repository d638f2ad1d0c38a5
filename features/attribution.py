"""Exposure-to-outcome attribution, pure: a fold over one session's events and lists.

Each published list is an **exposure**. The session's next ``track_start`` is attributed to the
last list shown before it (was its track in the list, at which rank), and that track's
``track_end`` completes the outcome (listened, skipped late, skipped early): one
:class:`nowplaying.outcomes.OutcomeMessage` per exposure. A next start that comes before the
attributed track ended completes it as ``no_end``. An exposure the session never follows with a
play has no outcome.

The fold's state (:class:`AttributionState`) is small JSON kept per session in Redis
(:mod:`features.store.attribution`); it records where in the input it stands (the partition and
offset of the last event folded, and the last few event ids), so a redelivered event is never
folded twice (see :mod:`streams.attribution`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from nowplaying.events import RecommendationMessage
from nowplaying.outcomes import OutcomeMessage, PlayOutcome

#: Event ids the state remembers (a copy of an event sent again at a later offset is skipped).
RECENT_EVENT_IDS: Final = 16


@dataclass(frozen=True, slots=True)
class Exposure:
    """A list shown: what the outcome needs of it."""

    exposure_id: str
    user_id: str
    session_id: str
    variant: str | None
    model_version: str
    tracks: tuple[str, ...]
    generated_at: int
    latency_ms: int | None


@dataclass(frozen=True, slots=True)
class Pending:
    """An exposure whose next play started and has not ended yet."""

    exposure: Exposure
    next_event_id: str
    next_track_id: str
    next_started_at: int


@dataclass(frozen=True, slots=True)
class AttributionState:
    """A session's attribution: the last list shown, the play waiting for its end, and the
    position in the input (``tag``: the partition, ``offset``: of the last event folded)."""

    shown: Exposure | None = None
    pending: Pending | None = None
    tag: str = ""
    offset: int = -1
    recent: tuple[str, ...] = ()

    def folded(self, tag: str, offset: int, event_id: str) -> bool:
        """Whether the event at ``offset`` of partition ``tag`` is already in this state."""
        return (tag == self.tag and offset <= self.offset) or event_id in self.recent

    def at(self, tag: str, offset: int, event_id: str) -> AttributionState:
        recent = (*self.recent, event_id)[-RECENT_EVENT_IDS:]
        return replace(self, tag=tag, offset=offset, recent=recent)


def exposure_of(message_json: str, kafka_ts_ms: int | None) -> Exposure:
    """The exposure of a published list (its JSON, and the trigger record's Kafka time)."""
    m = RecommendationMessage.model_validate_json(message_json)
    latency = None if kafka_ts_ms is None else max(0, m.generated_at - kafka_ts_ms)
    return Exposure(
        m.trigger_event_id,
        m.user_id,
        m.session_id,
        m.variant,
        m.model_version,
        tuple(r.track_id for r in sorted(m.recommendations, key=lambda r: r.rank)),
        m.generated_at,
        latency,
    )


def on_start(
    state: AttributionState,
    event_id: str,
    track_id: str,
    ts: int,
    shown: Exposure | None,
) -> tuple[AttributionState, list[OutcomeMessage]]:
    """A ``track_start`` (and ``shown``, the list published for it, if any): completes a play
    still waiting for its end as ``no_end``, attributes this start to the last list shown."""
    out = [] if state.pending is None else [outcome(state.pending, "no_end", None)]
    pending = None
    if state.shown is not None:
        pending = Pending(state.shown, event_id, track_id, ts)
    return replace(state, shown=shown, pending=pending), out


def on_steer(state: AttributionState, shown: Exposure | None) -> AttributionState:
    """A ``steer`` event: the refreshed list published for it, if any, is now the last list
    shown, so the next start is attributed to it. The list it replaces gets no outcome (like
    a list after which the session plays nothing more); the play in progress keeps waiting."""
    return state if shown is None else replace(state, shown=shown)


def on_end(
    state: AttributionState, track_id: str, ts: int, play: PlayOutcome
) -> tuple[AttributionState, list[OutcomeMessage]]:
    """A ``track_end``: completes the waiting play when it is the same track."""
    if state.pending is None or state.pending.next_track_id != track_id:
        return state, []
    return replace(state, pending=None), [outcome(state.pending, play, ts)]


def outcome(pending: Pending, play: PlayOutcome, ended_at: int | None) -> OutcomeMessage:
    e = pending.exposure
    rank = e.tracks.index(pending.next_track_id) + 1 if pending.next_track_id in e.tracks else None
    return OutcomeMessage(
        exposure_id=e.exposure_id,
        user_id=e.user_id,
        session_id=e.session_id,
        variant=e.variant,
        model_version=e.model_version,
        list_length=len(e.tracks),
        list_generated_at=e.generated_at,
        exposure_latency_ms=e.latency_ms,
        next_event_id=pending.next_event_id,
        next_track_id=pending.next_track_id,
        next_started_at=pending.next_started_at,
        hit=rank is not None,
        rank=rank,
        outcome=play,
        ended_at=ended_at,
    )


# --- the stored form --------------------------------------------------------------------------


def _exposure_json(e: Exposure | None) -> list[Any] | None:
    if e is None:
        return None
    return [
        e.exposure_id,
        e.user_id,
        e.session_id,
        e.variant,
        e.model_version,
        list(e.tracks),
        e.generated_at,
        e.latency_ms,
    ]


def _exposure(data: Sequence[Any] | None) -> Exposure | None:
    if data is None:
        return None
    eid, user, session, variant, version, tracks, generated, latency = data
    return Exposure(eid, user, session, variant, version, tuple(tracks), generated, latency)


def dump_state(state: AttributionState) -> str:
    p = state.pending
    pending = (
        None
        if p is None
        else [_exposure_json(p.exposure), p.next_event_id, p.next_track_id, p.next_started_at]
    )
    return json.dumps(
        {
            "shown": _exposure_json(state.shown),
            "pending": pending,
            "tag": state.tag,
            "offset": state.offset,
            "recent": list(state.recent),
        },
        separators=(",", ":"),
    )


def load_state(text: str | bytes | None) -> AttributionState:
    if not text:
        return AttributionState()
    d = json.loads(text)
    p = d["pending"]
    pending = None
    if p is not None:
        exposure = _exposure(p[0])
        assert exposure is not None
        pending = Pending(exposure, p[1], p[2], p[3])
    return AttributionState(
        _exposure(d["shown"]), pending, d["tag"], int(d["offset"]), tuple(d["recent"])
    )
