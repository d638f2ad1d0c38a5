"""The event contract (schema_version 1): what goes on the three topics.

* ``play-events`` (key: user_id): :data:`PlayEvent`, a ``track_start`` or a ``track_end``; and
  the listener's steer events (:mod:`nowplaying.steer_events`).
* ``now-playing-recommendations`` (key: user_id): :class:`RecommendationMessage`.
* ``play-events-dlq`` (key: the original key): :class:`DeadLetter`.

The JSON Schema files under ``schemas/`` are generated from these models
(``nowplaying schemas --out schemas``) and checked against them by the tests.

Parsing is data, not exceptions: :func:`parse_play_event` returns either an event or a
:class:`Rejection` that names the error class and a human-readable reason.

Ids (``event_id``, ``user_id``, ``session_id``, ``track_id``) are opaque: any string of 1 to 128
characters, where a character is a Unicode code point (as ``len`` in Python and JSON Schema's
``maxLength`` count; not UTF-16 units, not bytes: at most 512 UTF-8 bytes). Only control
characters (category Cc: U+0000-U+001F, U+007F-U+009F) are refused. Lone surrogates are not
characters and cannot be UTF-8: a raw one is invalid JSON, an escaped one (``"\\ud800"``) is
refused with a reason naming the field. Ids are compared exactly (no trimming, no Unicode
normalization). Where an id goes into a Redis key it is escaped (:mod:`nowplaying.keys`).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Final = 1

#: Longest id, in characters (Unicode code points).
MAX_ID_CHARS: Final = 128
#: What an id may hold (JSON Schema ``pattern``, also the API's): anything but control
#: characters. The length (1..MAX_ID_CHARS) is checked apart, as ``minLength``/``maxLength``:
#: a quantifier in the pattern would count UTF-16 units in JavaScript validators.
ID_PATTERN: Final = r"^[^\u0000-\u001F\u007F-\u009F]*$"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
MIN_TS_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def _no_control_characters(value: str) -> str:
    found = _CONTROL.search(value)
    if found is not None:
        raise PydanticCustomError(
            "id_control_character",
            "control character U+{code} at position {position} is not allowed in an id",
            {"code": f"{ord(found.group()):04X}", "position": found.start()},
        )
    return value


#: What the schema says of every id.
_ID_RULE: Final = "Opaque id: 1-128 characters (Unicode code points), no control characters."
#: An id of the contract (see the module's docstring).
Identifier = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(_no_control_characters),
    Field(description=_ID_RULE, json_schema_extra={"pattern": ID_PATTERN}),
]
TimestampMs = Annotated[int, Field(strict=True, ge=MIN_TS_MS, lt=MAX_TS_MS)]
ShortText = Annotated[str, StringConstraints(strict=True, max_length=64)]
Millis = Annotated[int, Field(strict=True, ge=0, le=86_400_000)]


class _PlayEventBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    event_id: Identifier = Field(description=f"Unique id of the event; the dedupe key. {_ID_RULE}")
    user_id: Identifier
    session_id: Identifier
    track_id: Identifier
    ts: TimestampMs = Field(description="Event time, epoch milliseconds (UTC).")
    played_ms: Millis | None = None
    duration_ms: Millis | None = None
    reason_start: ShortText | None = None
    reason_end: ShortText | None = None
    context_type: ShortText | None = None
    shuffle: Annotated[bool, Field(strict=True)] | None = None
    premium: Annotated[bool, Field(strict=True)] | None = None
    content_type: ShortText = "music"


class TrackStart(_PlayEventBase):
    """A track started playing: the moment a fresh Now Playing list is due."""

    model_config = ConfigDict(  # merged with the base's (extra ignored, frozen)
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "event_id": "e-5f2c1a",
                    "event_type": "track_start",
                    "user_id": "u-1001",
                    "session_id": "s-1001-0001",
                    "track_id": "t-4711",
                    "ts": 1764355200000,
                    "reason_start": "trackdone",
                    "context_type": "editorial_playlist",
                    "shuffle": False,
                    "premium": True,
                }
            ]
        },
    )

    event_type: Literal["track_start"]


class TrackEnd(_PlayEventBase):
    """A track stopped playing, listened through or skipped."""

    model_config = ConfigDict(  # merged with the base's (extra ignored, frozen)
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "event_id": "e-5f2c1b",
                    "event_type": "track_end",
                    "user_id": "u-1001",
                    "session_id": "s-1001-0001",
                    "track_id": "t-4711",
                    "ts": 1764355231000,
                    "skipped": True,
                    "played_ms": 31000,
                    "duration_ms": 215000,
                    "reason_end": "fwdbtn",
                }
            ]
        },
    )

    event_type: Literal["track_end"]
    skipped: Annotated[bool, Field(strict=True)]


#: A play event, the type every module annotates with.
PlayEvent: TypeAlias = TrackStart | TrackEnd
#: Its validation form: the union tagged by ``event_type`` (pydantic picks the model by it).
PLAY_EVENT_ADAPTER: Final[TypeAdapter[PlayEvent]] = TypeAdapter(
    Annotated[PlayEvent, Field(discriminator="event_type")]
)


class Recommendation(BaseModel):
    model_config = ConfigDict(frozen=True)

    track_id: str
    score: float
    rank: int = Field(ge=1)
    source: str = Field(description="Which candidate generator proposed it, e.g. 'colisten'.")


class RecommendationMessage(BaseModel):
    """The refreshed Now Playing list for one listener."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "user_id": "u-1001",
                    "session_id": "s-1001-0001",
                    "trigger_event_id": "e-5f2c1a",
                    "model_version": "20261128T210400Z-3f9a2c",
                    "generated_at": 1764355200004,
                    "recommendations": [
                        {"track_id": "t-815", "score": 1.92, "rank": 1, "source": "colisten"},
                        {"track_id": "t-42", "score": 1.37, "rank": 2, "source": "taste"},
                    ],
                }
            ]
        },
    )

    schema_version: Literal[1] = 1
    user_id: str
    session_id: str
    trigger_event_id: str
    model_version: str
    variant: str | None = Field(
        None, description="The A/B test variant that computed the list (none outside a test)."
    )
    generated_at: int = Field(description="When the list was computed, epoch milliseconds.")
    recommendations: list[Recommendation]
    steering: str | None = Field(
        None, description="The intents that shaped the list, '+'-joined (none: the ranker's)."
    )


class DeadLetter(BaseModel):
    """A message that could not be processed, with why, and where it came from."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "error_class": "invalid_json",
                    "reason": "not valid JSON: expected value at line 1 column 1",
                    "source_topic": "play-events",
                    "source_partition": 3,
                    "source_offset": 1234,
                    "key": "u-1001",
                    "payload_text": "{not json",
                    "payload_base64": None,
                    "failed_at": 1764355200123,
                }
            ]
        },
    )

    schema_version: Literal[1] = 1
    error_class: str = Field(description="Machine-readable class, e.g. 'invalid_schema'.")
    reason: str = Field(description="Human-readable explanation.")
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None = None
    payload_text: str | None = Field(None, description="The original bytes, when valid UTF-8.")
    payload_base64: str | None = Field(None, description="The original bytes otherwise.")
    failed_at: int = Field(description="When it was dead-lettered, epoch milliseconds.")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a raw message is not a valid play event."""

    error_class: str
    reason: str


def parse_play_event(raw: bytes, max_bytes: int = 16384) -> PlayEvent | Rejection:
    """Validate raw message bytes against the contract. Never raises."""
    if len(raw) > max_bytes:
        return Rejection("payload_too_large", f"message is {len(raw)} bytes; limit {max_bytes}")
    try:
        return PLAY_EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        return _rejection_from(exc, raw)
    except (ValueError, RecursionError) as exc:  # pragma: no cover - defensive
        return Rejection("invalid_json", f"not valid JSON: {exc}"[:500])


def _rejection_from(exc: ValidationError, raw: bytes) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"type": "unknown", "loc": (), "msg": str(exc)}
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        lone = _lone_surrogate(raw)
        if lone is not None:
            return lone
        return Rejection("invalid_json", f"not valid JSON: {first.get('msg', '')}"[:500])
    if kind in {"model_attributes_type", "model_type", "dict_type"}:
        return Rejection("invalid_schema", "the message is not a JSON object")
    if kind == "union_tag_invalid":
        return Rejection("unknown_event_type", _event_type_reason(raw))
    if kind == "union_tag_not_found":
        return Rejection("invalid_schema", "missing field 'event_type'")
    loc = [str(p) for p in first.get("loc", ())]
    if loc[:1] in (["track_start"], ["track_end"]):
        loc = loc[1:]
    where = ".".join(loc) or "message"
    if where == "schema_version":
        return Rejection("unsupported_schema_version", "schema_version must be 1")
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'message'}: {e.get('msg', '')}"
        for e in errors[:5]
    )
    return Rejection("invalid_schema", detail[:500] or f"{where}: invalid")


def _lone_surrogate(raw: bytes) -> Rejection | None:
    """JSON that escapes a lone surrogate (``"\\ud800"``) in a field: well-formed JSON text
    whose string is not Unicode text (our parser refuses it as invalid JSON), so the reason
    names the field instead. Only looked for once the message has failed to parse."""
    if b"\\u" not in raw:
        return None
    try:
        value: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    for name, field in value.items():
        found = _SURROGATE.search(field) if isinstance(field, str) else None
        if found is not None:
            code, position = f"{ord(found.group()):04X}", found.start()
            reason = f"{name}: lone surrogate U+{code} at position {position} is not a character"
            return Rejection("invalid_schema", f"{reason} (it cannot be UTF-8)"[:500])
    return None


def _event_type_reason(raw: bytes) -> str:
    try:
        value: Any = json.loads(raw).get("event_type")
    except (ValueError, AttributeError):
        value = None
    shown = repr(value)[:64]
    return f"unknown event_type {shown}; expected 'track_start' or 'track_end'"


def dead_letter_for(
    raw: bytes,
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    failed_at: int,
) -> DeadLetter:
    """Wrap the original bytes and the reason into the DLQ message."""
    text: str | None
    b64: str | None
    try:
        text, b64 = raw.decode("utf-8"), None
    except UnicodeDecodeError:
        text, b64 = None, base64.b64encode(raw).decode("ascii")
    key_text = key.decode("utf-8", errors="replace") if key is not None else None
    return DeadLetter(
        error_class=rejection.error_class,
        reason=rejection.reason,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key_text,
        payload_text=text,
        payload_base64=b64,
        failed_at=failed_at,
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema documents written to ``schemas/``, by file name."""
    from nowplaying.steer_events import SteerEvent  # noqa: PLC0415 (it builds on this module)

    steer_schema = _with_header(SteerEvent.model_json_schema(), "SteerEvent", "play-events")
    steer_schema["$id"] = f"https://nowplaying.dev/schemas/v{SCHEMA_VERSION}/steer-events.json"
    return {
        "play-event.schema.json": _with_header(
            PLAY_EVENT_ADAPTER.json_schema(), "PlayEvent", "play-events"
        ),
        "now-playing-recommendation.schema.json": _with_header(
            RecommendationMessage.model_json_schema(),
            "RecommendationMessage",
            "now-playing-recommendations",
        ),
        "dead-letter.schema.json": _with_header(
            DeadLetter.model_json_schema(), "DeadLetter", "play-events-dlq"
        ),
        **_outcome_schema(),
        "steer-event.schema.json": steer_schema,  # event_type 'steer', also on play-events
    }


def _outcome_schema() -> dict[str, dict[str, Any]]:
    from nowplaying.outcomes import OutcomeMessage  # noqa: PLC0415 (it imports this module)

    schema = OutcomeMessage.model_json_schema()
    return {"outcome.schema.json": _with_header(schema, "OutcomeMessage", "now-playing-outcomes")}


def _with_header(schema: dict[str, Any], title: str, topic: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://nowplaying.dev/schemas/v{SCHEMA_VERSION}/{topic}.json",
        "title": title,
        "description": f"Messages on the '{topic}' topic, schema_version {SCHEMA_VERSION}.",
        **{k: v for k, v in schema.items() if k != "title"},
    }
