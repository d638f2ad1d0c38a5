"""The steer event contract: valid steers parse, bad ones are refused with a reason, play
events take their own path unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nowplaying.events import Rejection, TrackStart, json_schemas, parse_play_event
from nowplaying.steer_events import INTENT_KINDS, SteerEvent, parse_input_event

STEER: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "st-1",
    "event_type": "steer",
    "user_id": "u-1",
    "session_id": "s-1",
    "ts": 1_764_355_200_000,
}


def raw(**fields: Any) -> bytes:
    return json.dumps({**STEER, **fields}).encode()


@pytest.mark.parametrize("intent", INTENT_KINDS)
def test_every_intent_parses(intent: str) -> None:
    track = {"track_id": "t-9"} if intent.endswith("like_this") else {}
    parsed = parse_input_event(raw(intent=intent, **track))
    assert isinstance(parsed, SteerEvent)
    assert parsed.intent == intent and parsed.track_id == track.get("track_id")


@pytest.mark.parametrize(
    ("fields", "error_class", "in_reason"),
    [
        ({"intent": "louder"}, "unknown_intent", "unknown intent 'louder'"),
        ({"intent": 3}, "unknown_intent", "expected one of 'more_like_this'"),
        ({"intent": "more_like_this"}, "missing_track_id", "'more_like_this' needs a track_id"),
        ({"intent": "less_like_this"}, "missing_track_id", "'less_like_this' needs a track_id"),
        ({"intent": "discover", "track_id": "t"}, "unexpected_track_id", "takes no track_id"),
        ({"intent": "reset", "track_id": "t"}, "unexpected_track_id", "'reset' takes no"),
        ({"intent": "familiar", "user_id": ""}, "invalid_schema", "user_id"),
        ({"intent": "familiar", "ts": "now"}, "invalid_schema", "ts"),
        ({"intent": "familiar", "schema_version": 2}, "unsupported_schema_version", "1"),
        ({}, "invalid_schema", "intent: Field required"),
        ({"intent": "more_like_this", "track_id": "a\u0007b"}, "invalid_schema", "track_id"),
    ],
)
def test_bad_steers_are_refused_with_a_reason(
    fields: dict[str, Any], error_class: str, in_reason: str
) -> None:
    parsed = parse_input_event(raw(**fields))
    assert isinstance(parsed, Rejection)
    assert parsed.error_class == error_class
    assert in_reason in parsed.reason


def test_play_events_and_other_refusals_are_the_play_parsers() -> None:
    start = {**STEER, "event_type": "track_start", "track_id": "t-1"}
    body = json.dumps(start).encode()
    assert parse_input_event(body) == parse_play_event(body)
    assert isinstance(parse_input_event(body), TrackStart)
    for bad in (b"{not json", b"[]", b"x" * 20000):
        assert parse_input_event(bad) == parse_play_event(bad)
    unknown = parse_input_event(json.dumps({**start, "event_type": "pause"}).encode())
    assert isinstance(unknown, Rejection) and unknown.error_class == "unknown_event_type"
    assert "'pause'" in unknown.reason and "'steer'" in unknown.reason


def test_the_schema_holds_the_examples_and_names_the_intents() -> None:
    schema = json_schemas()["steer-event.schema.json"]
    assert schema["title"] == "SteerEvent"
    assert schema["properties"]["intent"]["enum"] == list(INTENT_KINDS)
    assert schema["$id"] != json_schemas()["play-event.schema.json"]["$id"]
    for example in SteerEvent.model_config["json_schema_extra"]["examples"]:  # type: ignore[index,union-attr]
        assert isinstance(parse_input_event(json.dumps(example).encode()), SteerEvent)
