"""The steering benchmark's workload and statistics (the run itself needs the services)."""

from __future__ import annotations

import json

from devtools.bench.steering import p99_interval, with_steers
from devtools.bench.workload import Prepared
from nowplaying.steer_events import SteerEvent, parse_input_event


def play(i: int, session: str, start: bool) -> Prepared:
    kind = "track_start" if start else "track_end"
    body = {
        "schema_version": 1,
        "event_id": f"e{i}",
        "event_type": kind,
        "user_id": f"u-{session}",
        "session_id": session,
        "track_id": f"t{i}",
        "ts": 1_795_800_000_000 + i,
        **({} if start else {"skipped": False}),
    }
    return Prepared(f"e{i}", f"u-{session}".encode(), json.dumps(body).encode(), start)


def test_steers_follow_every_nth_event_of_a_started_session_with_valid_bodies() -> None:
    events = [play(i, "ab"[i % 2], start=i < 4 or i % 3 == 0) for i in range(40)]
    out, steers = with_steers(events, 5)
    assert len(steers) == 8 and len(out) == 48
    parsed = [parse_input_event(e.value) for e in out if e.event_id in steers]
    assert all(isinstance(p, SteerEvent) for p in parsed)
    kinds = [p.intent for p in parsed if isinstance(p, SteerEvent)]
    assert set(kinds) == {"more_like_this", "less_like_this", "discover", "familiar", "reset"}
    for i, e in enumerate(out):
        if e.event_id in steers:  # keyed and stamped like the event it follows, after it
            before = json.loads(out[i - 1].value)
            assert e.key == out[i - 1].key and json.loads(e.value)["ts"] > before["ts"]


def test_the_p99_interval_holds_the_p99() -> None:
    values = [float(v) for v in range(1, 1001)]
    low, high = p99_interval(values)
    assert low <= 990.0 <= high and high - low < 30
