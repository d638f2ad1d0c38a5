"""Property tests: the parser turns every kind of bad message into a Rejection, never raises."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nowplaying.events import (
    DeadLetter,
    PlayEvent,
    Rejection,
    dead_letter_for,
    parse_play_event,
)
from tests.support.bad_input import (
    FAMILIES,
    BadMessage,
    bad_messages,
    deep_nesting,
    encode,
    huge_strings,
    random_bytes,
    truncated_json,
    unknown_schema_version,
    valid_event_dicts,
    wrong_types,
)

LIMIT = 16384
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rejected(msg: BadMessage) -> Rejection:
    result = parse_play_event(msg.raw, LIMIT)
    assert isinstance(result, Rejection), f"{msg.family}: accepted {msg.raw[:200]!r}"
    assert result.error_class in msg.expected, (msg.family, result)
    assert result.reason.strip(), "a rejection must say why"
    assert len(result.reason) <= 500
    if msg.field is not None and result.error_class != "payload_too_large":
        assert names_the_field(result.reason, msg.field), (msg.family, msg.field, result.reason)
    return result


@FAST
@given(valid_event_dicts())
def test_the_base_events_of_the_mutations_are_valid(event: dict[str, object]) -> None:
    parsed = parse_play_event(encode(event), LIMIT)
    assert isinstance(parsed, PlayEvent)
    ids = (parsed.event_id, parsed.user_id, parsed.session_id, parsed.track_id)
    assert ids == (event["event_id"], event["user_id"], event["session_id"], event["track_id"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_messages())
def test_every_bad_message_is_rejected_with_a_reason(msg: BadMessage) -> None:
    _rejected(msg)


@FAST
@given(random_bytes())
def test_random_bytes_are_rejected(msg: BadMessage) -> None:
    _rejected(msg)


@FAST
@given(truncated_json())
def test_truncated_json_is_invalid_json(msg: BadMessage) -> None:
    assert _rejected(msg).error_class == "invalid_json"


@settings(max_examples=40, deadline=None)
@given(deep_nesting())
def test_deep_nesting_is_rejected_without_recursion_error(msg: BadMessage) -> None:
    _rejected(msg)


def names_the_field(reason: str, field: str) -> bool:
    """Whether ``reason`` is about ``field``: ``<field>: ...`` (the parser's form for a field's
    problem), ``missing field '<field>'`` or ``unknown <field> ...``."""
    return (
        reason.startswith(f"{field}: ")
        or reason == f"missing field '{field}'"
        or reason.startswith(f"unknown {field} ")
    )


@pytest.mark.parametrize(
    ("reason", "field", "names"),
    [
        ("ts: Input should be a valid integer", "ts", True),
        ("track_id: Field required", "track_id", True),
        ("missing field 'event_type'", "event_type", True),
        ("unknown event_type 'x'; expected 'track_start' or 'track_end'", "event_type", True),
        ("track_id: Field required", "user_id", False),
        ("skipped: Field required", "ts", False),
        ("session_id: String should have at least 1 character", "user_id", False),
    ],
)
def test_names_the_field_tells_fields_apart(reason: str, field: str, names: bool) -> None:
    assert names_the_field(reason, field) is names


@FAST
@given(wrong_types())
def test_wrong_types_and_missing_fields_name_the_field(msg: BadMessage) -> None:
    _rejected(msg)  # which checks that the reason names msg.field
    assert msg.field is not None


@settings(max_examples=60, deadline=None)
@given(huge_strings())
def test_huge_strings_are_rejected(msg: BadMessage) -> None:
    result = _rejected(msg)  # a reason naming msg.field, when one field is too long
    if len(msg.raw) > LIMIT:
        assert result.error_class == "payload_too_large"
    else:
        assert msg.field is not None


@FAST
@given(unknown_schema_version())
def test_unknown_schema_version_is_its_own_class(msg: BadMessage) -> None:
    assert _rejected(msg).reason == "schema_version must be 1"


@FAST
@given(bad_messages(), st.integers(0, 2**31 - 1), st.binary(max_size=130) | st.none())
def test_every_rejection_becomes_a_valid_dead_letter(
    msg: BadMessage, offset: int, key: bytes | None
) -> None:
    rejection = _rejected(msg)
    letter = dead_letter_for(
        msg.raw,
        rejection,
        topic="play-events",
        partition=3,
        offset=offset,
        key=key,
        failed_at=1_764_355_200_000,
    )
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again.error_class == rejection.error_class
    assert (again.payload_text or "").encode() == msg.raw or again.payload_base64 is not None


def test_every_family_is_generated() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(bad_messages())
    def collect(msg: BadMessage) -> None:
        seen.add(msg.family)

    collect()
    assert seen == set(FAMILIES)
