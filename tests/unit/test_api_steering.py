"""The steer route's pieces: a request becomes the contract's steer event (or is refused with
the dead-letter reason), and the live view's plays leave steers out."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from features.session import SessionEvent
from serving.queries import Play, plays_of
from serving.steering import (
    SessionSteerRequest,
    SteerRefusedError,
    SteerRequest,
    TrackSteerRequest,
    steer_event,
)

REQUEST: TypeAdapter[SteerRequest] = TypeAdapter(SteerRequest)


def test_a_request_becomes_the_steer_event_the_worker_applies() -> None:
    body = REQUEST.validate_python({"user_id": "u-1", "intent": "less_like_this", "track_id": "t"})
    assert isinstance(body, TrackSteerRequest)
    event = steer_event("s-1", body, now_ms=1_795_800_000_000)
    assert (event.user_id, event.session_id, event.intent, event.track_id) == (
        "u-1",
        "s-1",
        "less_like_this",
        "t",
    )
    assert event.ts == 1_795_800_000_000 and event.event_id.startswith("steer-")
    again = steer_event("s-1", body, now_ms=1_795_800_000_000)
    assert again.event_id != event.event_id  # a new id per request unless the client gives one
    given = REQUEST.validate_python({"user_id": "u-1", "intent": "reset", "event_id": "mine"})
    assert isinstance(given, SessionSteerRequest)
    assert steer_event("s-1", given).event_id == "mine"


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "u-1", "intent": "discover", "track_id": "t"},
        {"user_id": "u-1", "intent": "more_like_this"},
        {"user_id": "u-1", "intent": "louder"},
        {"user_id": "", "intent": "reset"},
        {"user_id": "u-1", "intent": "reset", "extra": 1},
    ],
)
def test_the_body_refuses_what_the_contract_refuses(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        REQUEST.validate_python(body)


def test_a_session_id_the_contract_refuses_is_refused_with_its_reason() -> None:
    body = REQUEST.validate_python({"user_id": "u-1", "intent": "familiar"})
    with pytest.raises(SteerRefusedError) as refused:
        steer_event("s\u0007", body)
    assert refused.value.error_class == "invalid_schema"
    assert "session_id" in refused.value.reason


def test_the_live_views_plays_leave_steers_out() -> None:
    events = [
        SessionEvent("start", "a", 1, None),
        SessionEvent("steer", "a", 2, None, "more_like_this"),
        SessionEvent("steer", "", 3, None, "discover"),
        SessionEvent("end", "a", 4, "listened"),
    ]
    assert plays_of(events) == [Play(track_id="a", started_at=1, ended_at=4, outcome="listened")]
