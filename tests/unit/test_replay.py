"""Interleaving and pacing of replayed sessions (pure; the producing side is integration-tested)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from models.labelled_sessions import LabelledPlay, Session, session_events
from nowplaying.events import PlayEvent
from streams.replay import event_time_schedule, interleave, replay_events
from tests.support.settings import isolated_settings


def sessions_of(lengths: list[int]) -> list[list[tuple[int, int]]]:
    return [[(s, i) for i in range(n)] for s, n in enumerate(lengths)]


@given(
    lengths=st.lists(st.integers(0, 12), min_size=0, max_size=30),
    concurrent=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_interleave_keeps_every_event_and_each_sessions_order(
    lengths: list[int], concurrent: int, seed: int
) -> None:
    sessions = sessions_of(lengths)
    out = list(interleave(sessions, concurrent, seed))
    assert sorted(out) == sorted(e for s in sessions for e in s)
    by_session: dict[int, list[int]] = defaultdict(list)
    for s, i in out:
        by_session[s].append(i)
    assert all(v == sorted(v) for v in by_session.values())


@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=20), concurrent=st.integers(1, 5))
def test_interleave_plays_at_most_concurrent_sessions_at_once(
    lengths: list[int], concurrent: int
) -> None:
    sessions = sessions_of(lengths)
    remaining = {s: n for s, n in enumerate(lengths)}
    started: set[int] = set()
    for s, _ in interleave(sessions, concurrent, seed=3):
        started.add(s)
        remaining[s] -= 1
        open_now = [x for x in started if remaining[x] > 0]
        assert len(open_now) <= concurrent


def test_interleave_starts_the_first_sessions_together_and_mixes_them() -> None:
    sessions = sessions_of([5] * 10)
    out = list(interleave(sessions, 3, seed=1))
    first_seen = list(dict.fromkeys(s for s, _ in out))
    assert sorted(first_seen[:3]) == [0, 1, 2]  # the first three start together
    switches = sum(a[0] != b[0] for a, b in itertools.pairwise(out))
    assert switches > 10  # really interleaved, not one session after the other


def make_session(i: int, n: int) -> list[PlayEvent]:
    plays = tuple(LabelledPlay(f"t{j}", "listened" if j % 2 else "skip_early") for j in range(n))
    return session_events(Session(f"s{i}", f"u{i}", plays))


def test_event_time_schedule_keeps_each_sessions_gaps_divided_by_the_speedup() -> None:
    sessions = [make_session(i, 4) for i in range(5)]
    schedule = list(event_time_schedule(sessions, concurrent=2, speedup=100.0))
    assert len(schedule) == sum(len(s) for s in sessions)
    dues = [d for d, _ in schedule]
    assert dues == sorted(dues)
    first = {ev.session_id: (d, ev.ts) for d, ev in reversed(schedule)}
    for due, ev in schedule:
        d0, ts0 = first[ev.session_id]
        assert abs((due - d0) - (ev.ts - ts0) / 1000 / 100.0) < 1e-9
    # the third session joins exactly when the first one to finish ends
    joined = first["s2"][0]
    finished = min(max(d for d, e in schedule if e.session_id == sid) for sid in ("s0", "s1"))
    assert joined == finished


class FakeFuture:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def add_errback(self, fn: Callable[[BaseException], object]) -> None:
        if self.error is not None:
            fn(self.error)


class FakeProducer:
    """kafka-python's producer surface that replay uses: send, flush."""

    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.flushed = False
        self.fail_every = fail_every

    def send(self, topic: str, key: bytes | None, value: bytes) -> FakeFuture:
        self.sent.append((topic, key, value))
        failing = self.fail_every and len(self.sent) % self.fail_every == 0
        return FakeFuture(RuntimeError("broker said no") if failing else None)

    def flush(self) -> None:
        self.flushed = True


def test_replay_events_restamps_keys_by_user_and_passes_raw_records_through() -> None:
    settings = isolated_settings(topic_play_events="play")
    events = make_session(1, 2)
    ticks = iter(range(1_795_900_000, 1_795_900_100))
    producer = FakeProducer()
    sent: list[PlayEvent] = []
    items: list[Any] = [events[0], (b"k", b"{broken"), *events[1:]]
    summary = replay_events(
        settings, items, producer=producer, sent=sent, clock=lambda: float(next(ticks))
    )
    assert producer.flushed
    assert [t for t, _, _ in producer.sent] == ["play"] * 5
    assert producer.sent[1][1:] == (b"k", b"{broken")
    assert [k for _, k, _ in producer.sent if k != b"k"] == [b"u1"] * 4
    assert [e.ts for e in sent] == [1_795_900_000_000 + i * 1000 for i in range(4)]
    assert [e.model_copy(update={"ts": 0}) for e in sent] == [
        e.model_copy(update={"ts": 0}) for e in events
    ]
    assert summary.events == 5 and summary.sessions == 1 and summary.failed == 0
    assert summary.by_type == {"track_start": 2, "track_end": 2, "raw": 1}


def test_replay_events_stops_at_the_limit_and_counts_failed_records() -> None:
    settings = isolated_settings()
    events = [e for i in range(3) for e in make_session(i, 3)]
    producer = FakeProducer(fail_every=4)
    summary = replay_events(settings, events, producer=producer, limit=10)
    assert len(producer.sent) == summary.events == 10
    assert summary.failed == 2
