"""The pipeline core with in-memory stand-ins for Redis, the ranker and Kafka.

The store stand-in (:class:`tests.support.fakes.MemoryStore`) passes the same contract suite as
the Redis back-ends (``tests/contract/test_feature_store_contract.py``). What the pipeline
reports is checked at its sensor seam (the hook calls); ``tests/unit/test_instrumentation.py``
checks what the metrics make of them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from features.session import SessionEvent, fold_events, state_summary, to_session_event
from nowplaying.events import (
    DeadLetter,
    PlayEvent,
    RecommendationMessage,
)
from streams.instrumentation import STORED_LIST, CountingSensor, Counts, Sensors
from streams.pipeline import Pipeline, RawMessage
from tests.support.batches import NOW_S, TOPIC, end, pipeline_settings, raw, start
from tests.support.fakes import FakePublisher, FakeRanker, MemoryStore, RecordingSensor


class Harness:
    def __init__(self, ranker: FakeRanker | None = None, publisher: FakePublisher | None = None):
        self.settings = pipeline_settings()
        self.store = MemoryStore()
        self.ranker = ranker or FakeRanker()
        self.publisher = publisher or FakePublisher()
        self.sleeps: list[float] = []
        self.failing_while_waiting: list[dict[str, str]] = []
        self.counting = CountingSensor()
        self.sensor = RecordingSensor()

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.failing_while_waiting.append(dict(self.pipeline.failing))

        self.pipeline = Pipeline(
            self.settings,
            self.store,
            self.ranker,
            self.publisher,
            sensor=Sensors(self.counting, self.sensor),
            clock=lambda: NOW_S,
            sleep=sleep,
        )

    def run(self, messages: Sequence[RawMessage]) -> Counts:
        """Process one batch; returns what the counting sensor heard of it."""
        before = self.counting.counts.copy()
        asyncio.run(self.pipeline.process_batch(messages))
        return self.counting.counts.since(before)

    def lists(self) -> list[RecommendationMessage]:
        recs = self.publisher.on(self.settings.topic_recommendations)
        return [RecommendationMessage.model_validate_json(v) for v in recs]

    def features(self, session_id: str) -> dict[str, object] | None:
        return asyncio.run(self.store.session_features(session_id))

    def log(self, session_id: str) -> list[SessionEvent]:
        return asyncio.run(self.store.session_events(session_id))

    def letters(self) -> list[DeadLetter]:
        dlq = self.publisher.on(self.settings.topic_dead_letters)
        return [DeadLetter.model_validate_json(v) for v in dlq]


SESSION: list[PlayEvent] = [
    start(0, "t1"),
    end(0, "t1", True),
    start(1, "t2"),
    end(1, "t2", False),
    start(2, "t3"),
]


def test_every_track_start_gets_a_list_ranked_on_the_state_right_after_it() -> None:
    h = Harness()
    result = h.run(raw(SESSION))
    lists = h.lists()
    assert [m.trigger_event_id for m in lists] == ["s1-0-s", "s1-1-s", "s1-2-s"]
    assert result.applied == 5 and result.published == 3 and not result.dead_letters
    # one ranker call for the whole batch, with the state right after each start
    assert len(h.ranker.calls) == 1
    positions = [s.position for s in h.ranker.calls[0]]
    assert positions == [1, 2, 3]
    assert [sorted(s.played) for s in h.ranker.calls[0]][2] == ["t1", "t2", "t3"]
    # no list recommends a track already played at that point
    assert "t1" not in {r.track_id for r in lists[0].recommendations}
    assert {"t1", "t2", "t3"}.isdisjoint(r.track_id for r in lists[2].recommendations)
    assert all(len(m.recommendations) == 5 for m in lists)
    # the stored state is the offline fold of the same events
    expected = state_summary(fold_events(to_session_event(e) for e in SESSION))
    assert h.features("s1") == expected
    # each fact reported once, in order: the batch, the events, the lists once Kafka acked
    assert h.sensor.of("batch") == [(5,)]
    assert h.sensor.of("event_applied") == [(e.event_id, False, None) for e in SESSION]
    latency = NOW_S - 1_795_800_000  # from the records' Kafka timestamp
    assert h.sensor.of("list_published") == [("model", None, latency)] * 3
    assert [op for op, _ in h.sensor.of("redis_roundtrip")] == ["apply", "write"]
    # apply, write, send, acknowledgements: each succeeded at once
    up = [("redis", True), ("redis", True), ("kafka", True), ("kafka", True)]
    assert h.sensor.of("dependency_up") == up
    assert h.sensor.of("dead_letter") == [] and h.sensor.of("retry") == []


def test_invalid_messages_are_dead_lettered_with_a_reason_and_the_rest_processed() -> None:
    h = Harness()
    future = start(9, "t9").model_copy(update={"ts": int(NOW_S * 1000) + 2 * 86_400_000})
    bad = [
        b"{not json",
        json.dumps({"event_type": "track_start", "user_id": "u1"}).encode(),
        json.dumps({**json.loads(SESSION[0].model_dump_json()), "event_type": "pause"}).encode(),
        b"x" * 20000,
        future.model_dump_json().encode(),
    ]
    messages = raw([SESSION[0], *bad, SESSION[2]])
    result = h.run(messages)
    letters = h.letters()
    assert [d.error_class for d in letters] == [
        "invalid_json",
        "invalid_schema",
        "unknown_event_type",
        "payload_too_large",
        "timestamp_in_future",
    ]
    assert [d.source_offset for d in letters] == [1, 2, 3, 4, 5]
    assert all(d.reason and d.source_topic == TOPIC for d in letters)
    assert letters[0].payload_text == "{not json"
    assert [m.trigger_event_id for m in h.lists()] == ["s1-0-s", "s1-1-s"]
    assert result.applied == 2 and sum(result.dead_letters.values()) == 5
    assert [reason for (reason,) in h.sensor.of("dead_letter")] == [d.error_class for d in letters]


def test_a_redelivered_batch_republishes_the_stored_lists_byte_for_byte() -> None:
    h = Harness()
    h.run(raw(SESSION))
    first = h.publisher.on(h.settings.topic_recommendations)
    state_before = h.features("s1")
    result = h.run(raw(SESSION))
    second = h.publisher.on(h.settings.topic_recommendations)[len(first) :]
    assert second == first
    assert result.duplicates == 5 and result.applied == 0 and result.republished == 3
    assert h.sensor.of("event_applied")[5:] == [(e.event_id, True, None) for e in SESSION]
    assert [source for source, _, _ in h.sensor.of("list_published")[3:]] == [STORED_LIST] * 3
    assert len(h.ranker.calls) == 1  # nothing re-ranked
    assert h.features("s1") == state_before
    assert len(h.log("s1")) == 5


def test_two_copies_of_an_event_in_one_batch_share_one_list() -> None:
    h = Harness()
    h.run(raw([SESSION[0], SESSION[1], SESSION[2], SESSION[2], SESSION[3]]))
    published = h.publisher.on(h.settings.topic_recommendations)
    assert len(published) == 3 and published[1] == published[2]
    assert len(h.ranker.calls[0]) == 2  # the copy is not ranked again
    assert len(h.log("s1")) == 4


def test_a_start_applied_but_never_listed_is_ranked_on_its_own_prefix() -> None:
    """A crash between the two Redis round trips: on redelivery the event is a duplicate with
    no stored list; its list must come from the state right after it, not the whole log."""
    h = Harness()
    applied_only = asyncio.run(h.store.apply_events(SESSION))
    assert not any(a.duplicate for a in applied_only)
    h.run(raw(SESSION[:3]))
    assert [s.position for s in h.ranker.calls[0]] == [1, 2]
    assert [s.current_track for s in h.ranker.calls[0]] == ["t1", "t2"]
    assert sorted(h.ranker.calls[0][0].played) == ["t1"]
    assert [m.trigger_event_id for m in h.lists()] == ["s1-0-s", "s1-1-s"]


def test_redis_failures_are_retried_with_exponential_backoff() -> None:
    h = Harness()
    h.store.apply_failures = 3
    result = h.run(raw(SESSION))
    assert h.sleeps == [0.1, 0.2, 0.3]
    assert h.failing_while_waiting == [{"redis": "ConnectionError: redis down"}] * 3
    assert h.pipeline.failing == {}  # recovered
    assert h.store.apply_calls == 4
    assert result.applied == 5 and len(h.lists()) == 3
    assert h.sensor.of("retry") == [("redis",)] * 3
    assert h.sensor.of("dependency_up")[:4] == [("redis", False)] * 3 + [("redis", True)]
    # the failed round trips are timed too
    assert [op for op, _ in h.sensor.of("redis_roundtrip")] == ["apply"] * 4 + ["write"]


def test_publishing_is_retried_until_every_record_is_acknowledged() -> None:
    h = Harness(publisher=FakePublisher(fail_times=2))
    result = h.run(raw(SESSION))
    assert len(h.sleeps) == 1  # the first send of the batch failed; the batch was re-sent
    assert h.sensor.of("retry") == [("kafka",)]
    assert result.published == 3  # each list reported once, after its acknowledgement
    triggers = [m.trigger_event_id for m in h.lists()]
    assert triggers[-3:] == ["s1-0-s", "s1-1-s", "s1-2-s"]


def test_a_session_the_ranker_fails_on_is_dead_lettered_and_the_others_listed() -> None:
    other: list[PlayEvent] = [
        start(0, "t7", session="s2", user="u2"),
        start(1, "t8", session="s2", user="u2"),
    ]
    h = Harness(ranker=FakeRanker(fail_on="t8"))
    h.run(raw([*SESSION[:3], *other]))
    assert [m.trigger_event_id for m in h.lists()] == ["s1-0-s", "s1-1-s", "s2-0-s"]
    assert [(d.error_class, d.source_offset) for d in h.letters()] == [("ranking_failed", 4)]
    assert h.sensor.of("dead_letter") == [("ranking_failed",)]


@pytest.mark.parametrize("size", [1, 37])
def test_batch_size_is_reported(size: int) -> None:
    h = Harness()
    result = h.run(raw([start(i, f"t{i}") for i in range(size)]))
    assert h.sensor.of("batch") == [(size,)]
    assert result.messages == size and result.published == size
