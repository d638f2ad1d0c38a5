"""The play-event contract: what is accepted, and the error class of everything that is not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nowplaying.events import (
    MAX_TS_MS,
    MIN_TS_MS,
    DeadLetter,
    Rejection,
    TrackEnd,
    TrackStart,
    dead_letter_for,
    parse_play_event,
)

START: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "e-1",
    "event_type": "track_start",
    "user_id": "u-1",
    "session_id": "s-1",
    "track_id": "t-1",
    "ts": 1_764_355_200_000,
}
END: dict[str, Any] = START | {"event_id": "e-2", "event_type": "track_end", "skipped": True}
REQUIRED_START = ("event_id", "event_type", "user_id", "session_id", "track_id", "ts")
REQUIRED_END = (*REQUIRED_START, "skipped")


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def rejected(payload: bytes, max_bytes: int = 16384) -> Rejection:
    result = parse_play_event(payload, max_bytes)
    assert isinstance(result, Rejection), f"accepted: {result!r}"
    assert result.reason, "a rejection always says why"
    return result


def test_valid_track_start() -> None:
    event = parse_play_event(raw(START))
    assert isinstance(event, TrackStart)
    assert (event.event_id, event.user_id, event.session_id, event.track_id, event.ts) == (
        "e-1",
        "u-1",
        "s-1",
        "t-1",
        1_764_355_200_000,
    )
    assert event.content_type == "music"
    assert event.played_ms is None


def test_valid_track_end() -> None:
    event = parse_play_event(raw(END | {"played_ms": 31_000, "duration_ms": 215_000}))
    assert isinstance(event, TrackEnd)
    assert event.skipped is True
    assert (event.played_ms, event.duration_ms) == (31_000, 215_000)


def test_schema_version_defaults_to_1_when_absent() -> None:
    event = parse_play_event(raw({k: v for k, v in START.items() if k != "schema_version"}))
    assert isinstance(event, TrackStart)
    assert event.schema_version == 1


def test_unknown_fields_are_ignored() -> None:
    event = parse_play_event(raw(START | {"device": "phone", "nested": {"a": [1, 2]}}))
    assert isinstance(event, TrackStart)
    assert not hasattr(event, "device")


def test_events_are_frozen() -> None:
    event = parse_play_event(raw(START))
    assert isinstance(event, TrackStart)
    with pytest.raises(ValueError, match="frozen"):
        event.track_id = "t-2"  # type: ignore[misc]


@pytest.mark.parametrize("field", [f for f in REQUIRED_START if f != "event_type"])
def test_track_start_missing_field_is_invalid_schema(field: str) -> None:
    result = rejected(raw({k: v for k, v in START.items() if k != field}))
    assert result.error_class == "invalid_schema"
    assert field in result.reason


@pytest.mark.parametrize("field", [f for f in REQUIRED_END if f != "event_type"])
def test_track_end_missing_field_is_invalid_schema(field: str) -> None:
    result = rejected(raw({k: v for k, v in END.items() if k != field}))
    assert result.error_class == "invalid_schema"
    assert field in result.reason


def test_missing_event_type_is_invalid_schema() -> None:
    result = rejected(raw({k: v for k, v in START.items() if k != "event_type"}))
    assert result.error_class == "invalid_schema"
    assert "event_type" in result.reason


@pytest.mark.parametrize(
    ("base", "field", "value"),
    [
        (START, "ts", "1764355200000"),  # a numeric string is not a number here
        (START, "ts", 1_764_355_200_000.5),
        (START, "ts", True),
        (START, "ts", None),
        (START, "user_id", 1001),
        (START, "track_id", ["t-1"]),
        (START, "session_id", {"id": "s"}),
        (START, "shuffle", "true"),
        (START, "premium", 1),
        (START, "played_ms", "100"),
        (END, "skipped", 1),
        (END, "skipped", 0),
        (END, "skipped", "yes"),
        (END, "skipped", None),
    ],
)
def test_wrong_types_are_invalid_schema(base: dict[str, Any], field: str, value: object) -> None:
    result = rejected(raw(base | {field: value}))
    assert result.error_class == "invalid_schema"
    assert field in result.reason


@pytest.mark.parametrize("ts", [MIN_TS_MS - 1, MAX_TS_MS, -1, 0])
def test_timestamps_outside_2000_to_2100_are_invalid(ts: int) -> None:
    assert rejected(raw(START | {"ts": ts})).error_class == "invalid_schema"


@pytest.mark.parametrize("ts", [MIN_TS_MS, MAX_TS_MS - 1])
def test_timestamp_bounds_are_inclusive_below_exclusive_above(ts: int) -> None:
    assert isinstance(parse_play_event(raw(START | {"ts": ts})), TrackStart)


ID_FIELDS = ("event_id", "user_id", "session_id", "track_id")


@pytest.mark.parametrize("field", ID_FIELDS)
def test_ids_longer_than_128_characters_are_invalid(field: str) -> None:
    assert isinstance(parse_play_event(raw(START | {field: "a" * 128})), TrackStart)
    result = rejected(raw(START | {field: "a" * 129}))
    assert result.error_class == "invalid_schema"
    assert result.reason.startswith(f"{field}: ")
    assert "at most 128 characters" in result.reason


@pytest.mark.parametrize("field", ID_FIELDS)
def test_id_length_counts_code_points_not_utf16_units_or_bytes(field: str) -> None:
    emoji = "\U0001f3b5"  # 1 code point, 2 UTF-16 units, 4 UTF-8 bytes
    event = parse_play_event(raw(START | {field: emoji * 128}))
    assert isinstance(event, TrackStart)
    assert getattr(event, field) == emoji * 128
    assert rejected(raw(START | {field: emoji * 129})).reason.startswith(f"{field}: ")


@pytest.mark.parametrize("field", ID_FIELDS)
def test_empty_ids_are_invalid(field: str) -> None:
    result = rejected(raw(START | {field: ""}))
    assert result.error_class == "invalid_schema"
    assert result.reason.startswith(f"{field}: ")


@pytest.mark.parametrize(
    "good_id",
    [
        "A-z_0.9:x@y+z=w",
        "u",
        "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
        "ユーザー-3",
        "user with space 4",
        "x" * 120 + "12345678",
        "listener@example.com",
        "2f1e6c1a-7d3b-4c8e-9a0f-5b6d7e8f9a0b",
        "brace{tag}",
        "quote\"and'apostrophe",
        "slash/x",
        "a,b;c",
        "100%",
        " edge spaces ",
        "ümlaut",
        "\u00a0nbsp\u2028line-separator\u200dzwj",
        "\U0001f3b5",
        "<script>alert(1)</script>",
        ".",
    ],
)
@pytest.mark.parametrize("field", ID_FIELDS)
def test_any_text_is_a_valid_id(field: str, good_id: str) -> None:
    event = parse_play_event(json.dumps(START | {field: good_id}, ensure_ascii=False).encode())
    assert isinstance(event, TrackStart)
    assert getattr(event, field) == good_id  # as sent: not trimmed, not normalized


@pytest.mark.parametrize(
    ("bad_id", "code", "position"),
    [
        ("new\nline", "000A", 3),
        ("tab\tin", "0009", 3),
        ("\x00", "0000", 0),
        ("del\x7f", "007F", 3),
        ("c1\x85", "0085", 2),
        ("c1\x9f", "009F", 2),
    ],
)
@pytest.mark.parametrize("field", ID_FIELDS)
def test_ids_with_control_characters_are_invalid_naming_field_and_character(
    field: str, bad_id: str, code: str, position: int
) -> None:
    result = rejected(raw(START | {field: bad_id}))
    assert result.error_class == "invalid_schema"
    assert result.reason == (
        f"{field}: control character U+{code} at position {position} is not allowed in an id"
    )


@pytest.mark.parametrize("field", ID_FIELDS)
def test_ids_with_an_escaped_lone_surrogate_are_invalid_naming_the_field(field: str) -> None:
    payload = raw(START | {field: "ok\ud800"})  # json.dumps writes the escape \ud800
    assert b"\\ud800" in payload
    result = rejected(payload)
    assert result.error_class == "invalid_schema"
    assert result.reason.startswith(f"{field}: lone surrogate U+D800 at position 2")


def test_a_lone_surrogate_in_raw_bytes_is_invalid_json() -> None:
    payload = raw(START).replace(b'"u-1"', b'"u-\xed\xa0\x80"')  # not UTF-8
    assert rejected(payload).error_class == "invalid_json"


def test_an_escaped_surrogate_pair_is_one_valid_character() -> None:
    event = parse_play_event(raw(START | {"track_id": "\U0001f3b5"}))  # \ud83c\udfb5
    assert isinstance(event, TrackStart) and event.track_id == "\U0001f3b5"


def test_short_text_fields_longer_than_64_are_invalid() -> None:
    assert isinstance(parse_play_event(raw(START | {"reason_start": "r" * 64})), TrackStart)
    result = rejected(raw(START | {"reason_start": "r" * 65}))
    assert result.error_class == "invalid_schema"


@pytest.mark.parametrize("event_type", ["track_skip", "TRACK_START", "", 3, None])
def test_unknown_event_type(event_type: object) -> None:
    result = rejected(raw(START | {"event_type": event_type}))
    assert result.error_class == "unknown_event_type"
    assert "track_start" in result.reason


@pytest.mark.parametrize(
    "payload", [b"{not json", b"", b"\xff\xfe\x00", b'{"event_id": "e-1",', b"nul\x00l"]
)
def test_non_json_is_invalid_json(payload: bytes) -> None:
    assert rejected(payload).error_class == "invalid_json"


@pytest.mark.parametrize("payload", [b"[]", b"[1, 2]", b'"track_start"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_invalid_schema(payload: bytes) -> None:
    result = rejected(payload)
    assert result.error_class == "invalid_schema"
    assert "object" in result.reason


def test_payload_over_the_limit_is_too_large_before_parsing() -> None:
    payload = raw(START | {"padding": "x" * 2000})
    assert isinstance(parse_play_event(payload, max_bytes=len(payload)), TrackStart)
    result = rejected(payload, max_bytes=len(payload) - 1)
    assert result.error_class == "payload_too_large"
    assert str(len(payload)) in result.reason
    # Even garbage is only measured, not parsed, when it is too large.
    assert rejected(b"{" * 500, max_bytes=256).error_class == "payload_too_large"


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_schema_version(version: object) -> None:
    result = rejected(raw(START | {"schema_version": version}))
    assert result.error_class == "unsupported_schema_version"


def test_parse_never_raises_on_deep_nesting() -> None:
    payload = b'{"event_type": "track_start", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert isinstance(parse_play_event(payload, max_bytes=len(payload)), Rejection)


def test_rejection_error_classes_are_the_documented_set() -> None:
    classes = {
        rejected(raw({})).error_class,
        rejected(b"{").error_class,
        rejected(b"[]").error_class,
        rejected(raw(START | {"event_type": "x"})).error_class,
        rejected(raw(START | {"schema_version": 9})).error_class,
        rejected(raw(START), max_bytes=10).error_class,
        rejected(raw(START | {"ts": "x"})).error_class,
    }
    assert classes == {
        "invalid_schema",
        "invalid_json",
        "unknown_event_type",
        "unsupported_schema_version",
        "payload_too_large",
    }


def test_dead_letter_keeps_text_payloads_as_text() -> None:
    payload = b'{"event_type": "nope"}'
    letter = dead_letter_for(
        payload,
        rejected(payload),
        topic="play-events",
        partition=3,
        offset=42,
        key=b"u-1",
        failed_at=1_764_355_200_123,
    )
    assert letter.payload_text == payload.decode()
    assert letter.payload_base64 is None
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "play-events",
        3,
        42,
    )
    assert letter.key == "u-1"
    assert letter.error_class == "unknown_event_type"
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_dead_letter_keeps_binary_payloads_as_base64() -> None:
    payload = b"\xff\x00\xfe"
    letter = dead_letter_for(
        payload, rejected(payload), topic="t", partition=0, offset=0, key=None, failed_at=1
    )
    assert letter.payload_text is None
    assert letter.payload_base64 == "/wD+"
    assert letter.key is None
