"""A stale owner racing the new one, step by step with explicit gates (no sleeps), through the
real pipeline on every store back-end (the in-memory double, one Redis server, a 3-master
Redis Cluster).

Worker A owns partition 0 and is paused in the middle of its second batch (a long GC pause, a
network stall); the partition is assigned to worker B, which claims it (a new epoch) and
processes it from offset 0 (no Kafka commit was made: redeliveries first); then A resumes. A is
fenced: nothing of the rest of its batch is written or published, and it stops writing the
partition. Each session's log holds every event once, in offset order, and every track start
has its list.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from features.session import SessionEvent, to_session_event
from features.store import (
    FeatureStore,
    StoredList,
)
from nowplaying.events import PlayEvent, TrackStart
from streams.ownership import Ownership
from streams.pipeline import Pipeline, RawMessage
from tests.contract.conftest import OnBackend
from tests.support.batches import NOW_S, TOPIC, pipeline_settings, raw
from tests.support.fakes import FakePublisher, FakeRanker, RecordingSensor
from tests.support.forwarding_store import Call, ForwardingStore
from tests.support.store import plays
from tests.support.store_backends import Backend


class Paused(ForwardingStore):
    """A store that, once armed, stops before its next ``pause_at`` call until released."""

    def __init__(self, store: FeatureStore, pause_at: Call) -> None:
        super().__init__(store)
        self._pause_at = pause_at
        self.armed = False
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def before(self, call: Call, lists: Sequence[StoredList] = ()) -> None:
        if self.armed and call == self._pause_at:
            self.armed = False
            self.reached.set()
            await self.release.wait()


class Worker:
    """One worker's pipeline and ownership on ``store``."""

    def __init__(self, store: FeatureStore) -> None:
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

    async def claim(self) -> None:
        self.ownership.assign(await self.store.claim_partitions([(TOPIC, 0)]), {})

    async def run(self, messages: Sequence[RawMessage]) -> None:
        await self.pipeline.process_batch(messages)

    def published_triggers(self) -> set[str]:
        topic = pipeline_settings().topic_recommendations
        return {json.loads(v)["trigger_event_id"] for v in self.publisher.on(topic)}

    def dead_letters(self) -> list[bytes]:
        return self.publisher.on(pipeline_settings().topic_dead_letters)


def interleaved() -> list[PlayEvent]:
    """Two sessions' plays, interleaved in one partition (12 events)."""
    a, b = plays("sa", 3, "ua"), plays("sb", 3, "ub")
    return [e for pair in zip(a, b, strict=True) for e in pair]


def offline(events: Sequence[PlayEvent]) -> list[SessionEvent]:
    return [to_session_event(e) for e in events]


@pytest.mark.parametrize("pause_at", ["apply", "write"])
def test_a_stale_owner_resuming_after_the_new_owner_took_over_is_fenced(
    on_backend: OnBackend, pause_at: Call
) -> None:
    events = interleaved()
    messages = raw(events)

    async def body(b: Backend) -> tuple[Worker, Worker, dict[str, list[SessionEvent]]]:
        gate = Paused(b.store, pause_at)
        a, new = Worker(gate), Worker(b.another_worker())
        await a.claim()
        await a.run(messages[:4])
        gate.armed = True
        stalled = asyncio.ensure_future(a.run(messages[4:8]))
        await gate.reached.wait()  # A is paused mid-batch
        await new.claim()  # the partition moved: B's epoch is A's + 1
        for first in range(0, 12, 4):  # B from the start: 0-3 (and 4-7) are redeliveries
            await new.run(messages[first : first + 4])
        gate.release.set()  # A wakes up
        await stalled
        await a.run(messages[8:])  # A's next batch, still in its buffer: not written
        logs = {sid: await b.reader.session_events(sid) for sid in ("sa", "sb")}
        return a, new, logs

    a, new, logs = on_backend(body)
    assert logs == {
        "sa": offline([e for e in events if e.session_id == "sa"]),
        "sb": offline([e for e in events if e.session_id == "sb"]),
    }
    starts = {e.event_id for e in events if isinstance(e, TrackStart)}
    assert new.published_triggers() == starts  # B publishes a list for every start
    assert a.ownership.epoch(TOPIC, 0) is None  # A stopped writing the partition
    first_batch = {e.event_id for e in events[:4] if isinstance(e, TrackStart)}
    assert a.sensor.of("fenced_batch") == [(TOPIC, 0)]  # once: then A stops writing it
    if pause_at == "apply":
        # A's paused batch was refused whole: nothing of it applied, nothing published
        assert a.published_triggers() == first_batch
    else:
        # A's batch was applied before B came (its effects are durable and B redelivered it
        # as duplicates); its late state write did not replace B's, and its next batch is
        # refused
        assert a.published_triggers() == first_batch | {
            e.event_id for e in events[4:8] if isinstance(e, TrackStart)
        }
    assert not a.dead_letters() and not new.dead_letters()
