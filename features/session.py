"""Session state and the per-event function: the one code path for offline and online features.

Offline, training folds a session's events through :func:`apply_event` and builds a feature row at
each prefix. Online, the stream keeps each session's events in Redis (compact
:func:`encode_event` records), and folds the same records through the same :func:`apply_event`.
Nothing here knows about tracks' artifacts; :mod:`features.rows` adds those.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final, Literal, NamedTuple

from features.intents import ActiveIntent, IntentKind, add_intent, live_intents
from nowplaying.events import TrackEnd, TrackStart
from nowplaying.steer_events import InputEvent, SteerEvent

Outcome = Literal["skip_early", "skip_late", "listened"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("skip_early", "skip_late", "listened")

#: ``reason_end`` values that mean the listener moved on before the track finished.
SKIP_REASONS: Final = frozenset({"fwdbtn", "backbtn", "clickrow", "skip"})
#: How many recent tracks the state remembers (for candidates, the ``recent`` features and the
#: sequence model's window, :data:`features.sequence.SEQUENCE_LENGTH`).
RECENT_TRACKS: Final = 20
#: How many listened / skipped tracks feed the taste centroids.
TASTE_TRACKS: Final = 50
#: Decay of the recency-weighted skip rate (weight of the older history per new track end).
SKIP_DECAY: Final = 0.7


class SessionEvent(NamedTuple):
    """The part of a play event that session features depend on (the stored, compact form)."""

    kind: Literal["start", "end", "steer"]
    track_id: str  # a steer's steered track, "" when its intent names none
    ts: int
    outcome: Outcome | None  # set for "end" only
    intent: IntentKind | None = None  # set for "steer" only


def outcome_of(event: TrackEnd) -> Outcome:
    """Early skip (``skipped``), late skip (left by a skip button after the early window)
    or listened through."""
    if event.skipped:
        return "skip_early"
    if event.reason_end in SKIP_REASONS:
        return "skip_late"
    return "listened"


def to_session_event(event: InputEvent) -> SessionEvent:
    if isinstance(event, TrackStart):
        return SessionEvent("start", event.track_id, event.ts, None)
    if isinstance(event, SteerEvent):
        return SessionEvent("steer", event.track_id or "", event.ts, None, event.intent)
    return SessionEvent("end", event.track_id, event.ts, outcome_of(event))


_OUTCOME_CODE: Final[dict[Outcome, str]] = {"skip_early": "e", "skip_late": "l", "listened": "c"}
_CODE_OUTCOME: Final[dict[str, Outcome]] = {v: k for k, v in _OUTCOME_CODE.items()}


def encode_event(ev: SessionEvent) -> str:
    """Compact record stored in Redis, e.g. ``["s","t-1",1764355200000]``.

    A JSON array, so any track id round-trips through :func:`decode_event` (quotes, commas,
    brackets, backslashes and newlines are escaped; non-ASCII as ``\\uXXXX``): a record is one
    line of ASCII, and one event always gives the same record (the store compares records)."""
    if ev.kind == "start":
        return json.dumps(["s", ev.track_id, ev.ts], separators=(",", ":"))
    if ev.kind == "steer":  # ["i","more_like_this","t-1",ts]; no track: null
        return json.dumps(["i", ev.intent, ev.track_id or None, ev.ts], separators=(",", ":"))
    assert ev.outcome is not None
    return json.dumps(["e", ev.track_id, ev.ts, _OUTCOME_CODE[ev.outcome]], separators=(",", ":"))


def decode_event(record: str | bytes) -> SessionEvent:
    parts = json.loads(record)
    if parts[0] == "s":
        return SessionEvent("start", parts[1], int(parts[2]), None)
    if parts[0] == "i":
        return SessionEvent("steer", parts[2] or "", int(parts[3]), None, parts[1])
    return SessionEvent("end", parts[1], int(parts[2]), _CODE_OUTCOME[parts[3]])


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the session has shown so far. Immutable; :func:`apply_event` returns a new one."""

    position: int = 0  # tracks started so far (1 while the first track plays)
    plays: int = 0  # tracks ended
    skips: int = 0  # early skips
    late_skips: int = 0
    listens: int = 0  # listened through
    consecutive_skips: int = 0  # early or late skips since the last listened-through track
    skip_ewm_num: float = 0.0
    skip_ewm_den: float = 0.0
    current_track: str | None = None
    last_listened: str | None = None
    last_skipped: str | None = None
    recent_tracks: tuple[str, ...] = ()  # last RECENT_TRACKS started, oldest first
    #: the outcome of each of ``recent_tracks`` ("" while that play has not ended)
    recent_outcomes: tuple[str, ...] = ()
    listened_tracks: tuple[str, ...] = ()  # last TASTE_TRACKS listened through
    skipped_tracks: tuple[str, ...] = ()  # last TASTE_TRACKS skipped (early or late)
    played: frozenset[str] = field(default_factory=frozenset)  # every track started
    first_ts: int | None = None
    last_ts: int | None = None
    #: The listener's active intents, oldest first (features.intents; steer events only)
    intents: tuple[ActiveIntent, ...] = ()

    @property
    def skip_rate(self) -> float:
        """Share of ended tracks that were skipped (early or late); 0 before the first end."""
        return (self.skips + self.late_skips) / self.plays if self.plays else 0.0

    @property
    def recency_skip_rate(self) -> float:
        """Exponentially weighted skip share, recent track ends weigh most."""
        return self.skip_ewm_num / self.skip_ewm_den if self.skip_ewm_den else 0.0


def apply_event(state: SessionState, ev: SessionEvent) -> SessionState:
    """The state after one more event. Pure: same inputs, same output. A steer event changes
    the active intents only; a play event lets the intents expired at its time go."""
    if ev.kind == "steer":
        assert ev.intent is not None
        return replace(state, intents=add_intent(state.intents, ev.intent, ev.track_id, ev.ts))
    intents = live_intents(state.intents, ev.ts) if state.intents else ()
    # Built field by field (not dataclasses.replace): this runs once per event on the hot path.
    first_ts = state.first_ts if state.first_ts is not None else ev.ts
    last_ts = ev.ts if state.last_ts is None else max(state.last_ts, ev.ts)
    track = ev.track_id
    if ev.kind == "start":
        return SessionState(
            position=state.position + 1,
            plays=state.plays,
            skips=state.skips,
            late_skips=state.late_skips,
            listens=state.listens,
            consecutive_skips=state.consecutive_skips,
            skip_ewm_num=state.skip_ewm_num,
            skip_ewm_den=state.skip_ewm_den,
            current_track=track,
            last_listened=state.last_listened,
            last_skipped=state.last_skipped,
            recent_tracks=(*state.recent_tracks, track)[-RECENT_TRACKS:],
            recent_outcomes=(*state.recent_outcomes, "")[-RECENT_TRACKS:],
            listened_tracks=state.listened_tracks,
            skipped_tracks=state.skipped_tracks,
            played=state.played if track in state.played else state.played | {track},
            first_ts=first_ts,
            last_ts=last_ts,
            intents=intents,
        )
    skipped = ev.outcome != "listened"
    return SessionState(
        position=state.position,
        plays=state.plays + 1,
        skips=state.skips + (ev.outcome == "skip_early"),
        late_skips=state.late_skips + (ev.outcome == "skip_late"),
        listens=state.listens + (not skipped),
        consecutive_skips=state.consecutive_skips + 1 if skipped else 0,
        skip_ewm_num=state.skip_ewm_num * SKIP_DECAY + float(skipped),
        skip_ewm_den=state.skip_ewm_den * SKIP_DECAY + 1.0,
        current_track=state.current_track,
        last_listened=state.last_listened if skipped else track,
        last_skipped=track if skipped else state.last_skipped,
        recent_tracks=state.recent_tracks,
        recent_outcomes=_ended(state, track, ev.outcome),
        listened_tracks=state.listened_tracks
        if skipped
        else (*state.listened_tracks, track)[-TASTE_TRACKS:],
        skipped_tracks=(*state.skipped_tracks, track)[-TASTE_TRACKS:]
        if skipped
        else state.skipped_tracks,
        played=state.played if track in state.played else state.played | {track},
        first_ts=first_ts,
        last_ts=last_ts,
        intents=intents,
    )


def _ended(state: SessionState, track: str, outcome: Outcome | None) -> tuple[str, ...]:
    """``recent_outcomes`` with the outcome set on the latest unended play of ``track``."""
    outcomes = state.recent_outcomes
    tracks = state.recent_tracks
    for i in range(len(tracks) - 1, -1, -1):
        if tracks[i] == track and not outcomes[i]:
            return (*outcomes[:i], outcome or "", *outcomes[i + 1 :])
    return outcomes


def fold_events(events: Iterable[SessionEvent], state: SessionState | None = None) -> SessionState:
    """Apply events in order, from an empty session unless a state is given."""
    s = state if state is not None else SessionState()
    for ev in events:
        s = apply_event(s, ev)
    return s


def state_summary(state: SessionState) -> dict[str, object]:
    """The session's features by name, as the API shows them (JSON-friendly)."""
    return {
        "position": state.position,
        "plays": state.plays,
        "skips": state.skips,
        "late_skips": state.late_skips,
        "listens": state.listens,
        "skip_rate": round(state.skip_rate, 6),
        "recency_skip_rate": round(state.recency_skip_rate, 6),
        "consecutive_skips": state.consecutive_skips,
        "current_track": state.current_track,
        "last_listened": state.last_listened,
        "last_skipped": state.last_skipped,
        "recent_tracks": list(state.recent_tracks),
        "listened_tracks": list(state.listened_tracks),
        "skipped_tracks": list(state.skipped_tracks),
        "first_ts": state.first_ts,
        "last_ts": state.last_ts,
        "intents": [i._asdict() for i in state.intents],
    }
