"""The pipeline writing with its owner's epochs (:mod:`streams.fencing`), on the in-memory store:
what it does with a partition it must not write, with a fenced batch and with an event the
store refuses as out of order."""

from __future__ import annotations

import asyncio
import json

from features.store import Claim
from nowplaying.events import DeadLetter
from streams.ownership import Ownership
from streams.pipeline import Pipeline, RawMessage
from tests.support.batches import NOW_S, TOPIC, end, pipeline_settings, raw, start
from tests.support.fakes import FakePublisher, FakeRanker, MemoryStore, RecordingSensor


class Worker:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.ownership = Ownership()
        self.publisher = FakePublisher()
        self.sensor = RecordingSensor()
        self.pipeline = Pipeline(
            pipeline_settings(),
            store,
            FakeRanker(),
            self.publisher,
            sensor=self.sensor,
            owner=self.ownership,
            clock=lambda: NOW_S,
        )

    def claim(self) -> Claim:
        claims = asyncio.run(self.store.claim_partitions([(TOPIC, 0)]))
        self.ownership.assign(claims, {})
        return claims[(TOPIC, 0)]

    def run(self, messages: list[RawMessage]) -> None:
        asyncio.run(self.pipeline.process_batch(messages))

    def dead_letters(self) -> list[DeadLetter]:
        topic = pipeline_settings().topic_dead_letters
        return [DeadLetter.model_validate_json(v) for v in self.publisher.on(topic)]

    def lists(self) -> list[str]:
        topic = pipeline_settings().topic_recommendations
        return [json.loads(v)["trigger_event_id"] for v in self.publisher.on(topic)]


def test_messages_of_a_partition_never_claimed_are_not_processed() -> None:
    w = Worker(MemoryStore())
    w.run(raw([start(0, "t1"), b"not json"]))
    assert w.publisher.records == []  # not even the dead letter
    assert asyncio.run(w.store.session_events("s1")) == []


def test_a_fenced_batch_publishes_nothing_and_the_partition_is_not_written_again() -> None:
    store = MemoryStore()
    old, new = Worker(store), Worker(store.sibling())
    old.claim()
    old.run(raw([start(0, "t1")]))
    assert new.claim().next_offset == 1
    old.run(raw([end(0, "t1", False), b"not json", start(1, "t2")], first_offset=1))
    assert old.lists() == ["s1-0-s"] and old.dead_letters() == []  # nothing of the batch
    assert old.sensor.of("fenced_batch") == [(TOPIC, 0)]
    assert old.ownership.epoch(TOPIC, 0) is None
    old.run(raw([start(2, "t3")], first_offset=4))  # its next batch: dropped in the worker
    assert old.lists() == ["s1-0-s"] and old.sensor.of("fenced_batch") == [(TOPIC, 0)]
    assert [e.track_id for e in asyncio.run(store.session_events("s1"))] == ["t1"]


def test_an_event_older_than_its_sessions_last_is_dead_lettered_as_out_of_order() -> None:
    w = Worker(MemoryStore())
    w.claim()
    w.run(raw([start(0, "t1")], first_offset=5))
    w.run(raw([start(1, "t2"), end(1, "t2", True)], first_offset=3))  # 3, 4: before 5
    letters = w.dead_letters()
    assert [(d.error_class, d.source_offset) for d in letters] == [
        ("out_of_order", 3),
        ("out_of_order", 4),
    ]
    assert [e.track_id for e in asyncio.run(w.store.session_events("s1"))] == ["t1"]
    assert w.lists() == ["s1-0-s"]
