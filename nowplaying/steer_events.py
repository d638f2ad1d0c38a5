"""The steering contract: the intents a listener steers a session with, and the steer event.

A listener (through the client app) steers the live session with one intent:

* ``more_like_this`` (a track): lean the list towards tracks like it;
* ``less_like_this`` (a track, a thumbs-down): lean away from it, drop near-duplicates of it;
* ``discover``: new to me, less popular tracks;
* ``familiar``: close to what I have listened to;
* ``reset``: forget every intent of the session.

A :class:`SteerEvent` (``event_type: "steer"``) travels on the ``play-events`` topic, keyed by
``user_id`` like the listener's plays: it is ordered with them, deduplicated by ``event_id`` and
fenced like every other event, and the worker answers it at once with a refreshed list (see
README "Session steering"). :func:`parse_input_event` reads any message of that topic: a play
event (:func:`nowplaying.events.parse_play_event`, untouched) or a steer event; a bad steer event
is a :class:`nowplaying.events.Rejection` naming what is wrong (``unknown_intent``,
``missing_track_id``, ``unexpected_track_id``, ``invalid_schema``, ...).
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from nowplaying.events import (
    Identifier,
    PlayEvent,
    Rejection,
    TimestampMs,
    parse_play_event,
)

IntentKind = Literal["more_like_this", "less_like_this", "discover", "familiar", "reset"]
INTENT_KINDS: Final[tuple[IntentKind, ...]] = get_args(IntentKind)
#: The intents that name a track (``track_id`` required); the others take none.
TRACK_INTENTS: Final[frozenset[IntentKind]] = frozenset({"more_like_this", "less_like_this"})
STEER: Final = "steer"


class SteerEvent(BaseModel):
    """The listener steers the session with an intent: the list is refreshed at once."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "event_id": "st-9c41e2",
                    "event_type": "steer",
                    "user_id": "u-1001",
                    "session_id": "s-1001-0001",
                    "ts": 1764355260000,
                    "intent": "more_like_this",
                    "track_id": "t-4711",
                },
                {
                    "schema_version": 1,
                    "event_id": "st-9c41e3",
                    "event_type": "steer",
                    "user_id": "u-1001",
                    "session_id": "s-1001-0001",
                    "ts": 1764355290000,
                    "intent": "discover",
                },
            ]
        },
    )

    schema_version: Literal[1] = 1
    event_id: Identifier = Field(description="Unique id of the event; the dedupe key.")
    event_type: Literal["steer"]
    user_id: Identifier
    session_id: Identifier
    ts: TimestampMs = Field(description="Event time, epoch milliseconds (UTC).")
    intent: IntentKind = Field(description="What the listener asks for.")
    track_id: Identifier | None = Field(
        None, description="The track of more_like_this / less_like_this; absent otherwise."
    )

    @model_validator(mode="after")
    def _track_matches_intent(self) -> SteerEvent:
        if self.intent in TRACK_INTENTS and self.track_id is None:
            raise PydanticCustomError(
                "missing_track_id", "intent '{intent}' needs a track_id", {"intent": self.intent}
            )
        if self.intent not in TRACK_INTENTS and self.track_id is not None:
            raise PydanticCustomError(
                "unexpected_track_id",
                "intent '{intent}' takes no track_id",
                {"intent": self.intent},
            )
        return self


#: Any valid message of the ``play-events`` topic.
InputEvent: TypeAlias = PlayEvent | SteerEvent

_RULES: Final = {"missing_track_id", "unexpected_track_id"}


def parse_steer_event(raw: bytes) -> SteerEvent | Rejection:
    """Validate a message whose ``event_type`` is ``steer``. Never raises."""
    try:
        return SteerEvent.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0] if errors else {"type": "unknown", "loc": (), "msg": str(exc)}
        kind, where = str(first["type"]), ".".join(str(p) for p in first["loc"])
        if kind in _RULES:
            return Rejection(kind, str(first["msg"]))
        if where == "intent" and kind != "missing":
            return Rejection("unknown_intent", _intent_reason(raw))
        if where == "schema_version":
            return Rejection("unsupported_schema_version", "schema_version must be 1")
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in errors[:5]
        )
        return Rejection("invalid_schema", detail[:500])


def parse_input_event(raw: bytes, max_bytes: int = 16384) -> InputEvent | Rejection:
    """A message of the ``play-events`` topic: a play event, a steer event or why it is
    neither. Play events take :func:`nowplaying.events.parse_play_event`'s path unchanged; only
    a message it refuses for its ``event_type`` is read again. Never raises."""
    parsed = parse_play_event(raw, max_bytes)
    if not isinstance(parsed, Rejection) or parsed.error_class != "unknown_event_type":
        return parsed
    event_type = _field(raw, "event_type")
    if event_type == STEER:
        return parse_steer_event(raw)
    return Rejection(
        "unknown_event_type",
        f"unknown event_type {repr(event_type)[:64]}; expected 'track_start', 'track_end' or "
        "'steer'",
    )


def _field(raw: bytes, name: str) -> Any:
    try:
        value: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value.get(name) if isinstance(value, dict) else None


def _intent_reason(raw: bytes) -> str:
    shown = repr(_field(raw, "intent"))[:64]
    return f"unknown intent {shown}; expected one of {', '.join(map(repr, INTENT_KINDS))}"
