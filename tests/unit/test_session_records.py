"""The compact session-log record (``features.session.encode_event``): any track id the
contract allows round-trips, delimiters and all, and one event always gives one record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.session import (
    OUTCOMES,
    SessionEvent,
    decode_event,
    encode_event,
    fold_events,
    to_session_event,
)
from nowplaying.events import MAX_TS_MS, MIN_TS_MS, TrackEnd, TrackStart
from tests.support.ids import opaque_ids

MANY = settings(max_examples=300, deadline=None)


@st.composite
def session_events(draw: st.DrawFn) -> SessionEvent:
    track = draw(opaque_ids())
    ts = draw(st.integers(MIN_TS_MS, MAX_TS_MS - 1))
    if draw(st.booleans()):
        return SessionEvent("start", track, ts, None)
    return SessionEvent("end", track, ts, draw(st.sampled_from(OUTCOMES)))


@MANY
@given(session_events())
def test_every_record_round_trips_and_is_one_line_of_ascii(ev: SessionEvent) -> None:
    record = encode_event(ev)
    assert decode_event(record) == ev
    assert decode_event(record.encode()) == ev  # as Redis returns it
    assert record.isascii() and "\n" not in record and "\r" not in record
    assert encode_event(decode_event(record)) == record  # one event, one record


@pytest.mark.parametrize(
    "track_id",
    [
        '","e",1,"c',  # the record's own delimiters
        '"]',
        "[",
        "\\",
        "a,b",
        "ユーザー",
        "\U0001f3b5",
        "\u2028",
        "{x}",
        " ",
    ],
)
def test_a_track_id_holding_the_records_delimiters_round_trips(track_id: str) -> None:
    for ev in (
        SessionEvent("start", track_id, MIN_TS_MS, None),
        SessionEvent("end", track_id, MIN_TS_MS, "skip_early"),
    ):
        record = encode_event(ev)
        assert len(json.loads(record)) == (3 if ev.kind == "start" else 4)
        assert decode_event(record) == ev


@MANY
@given(opaque_ids(max_size=12), opaque_ids(max_size=12), st.booleans())
def test_records_of_events_with_unicode_ids_fold_like_the_events(
    first: str, second: str, skipped: bool
) -> None:
    common = {"user_id": "u", "session_id": "s", "ts": MIN_TS_MS}
    events: list[TrackStart | TrackEnd] = [
        TrackStart(event_type="track_start", event_id="1", track_id=first, **common),
        TrackEnd(event_type="track_end", event_id="2", track_id=first, skipped=skipped, **common),
        TrackStart(event_type="track_start", event_id="3", track_id=second, **common),
    ]
    direct = [to_session_event(e) for e in events]
    through_records = [decode_event(encode_event(ev)) for ev in direct]
    state = fold_events(through_records)
    assert state == fold_events(direct)
    assert state.current_track == second
    assert (state.last_skipped if skipped else state.last_listened) == first
