"""Exposure-to-outcome attribution through the real pipeline on the real Redis.

Hand-built sessions against a deterministic ranker (:class:`tests.support.fakes.FakeRanker`: the
first ``k`` tracks of ``t0..t49`` not played yet), so each list, and so each hit, rank and
outcome, is known in advance. The feature store and the attribution state are the worker's own
Redis back-ends; what would be sent to Kafka is captured. Redeliveries: a batch processed again
(same offsets), a copy of an event at a later offset, and a save whose reply is lost (the
retried batch finds its state saved and republishes the stored outcomes, byte for byte).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from features.store import (
    AttributionSave,
    FeatureStore,
    StoredList,
    feature_store_for,
)
from features.store.redis_common import RedisStore
from nowplaying.clients import async_redis_client
from nowplaying.events import PlayEvent, RecommendationMessage, TrackEnd
from nowplaying.keys import Keys
from nowplaying.outcomes import OutcomeMessage
from nowplaying.settings import Settings
from streams.attribution import Attribution
from streams.pipeline import Pipeline
from tests.conftest import SettingsFactory
from tests.support.batches import NOW_S, end, raw, start
from tests.support.fakes import FakePublisher, FakeRanker, RecordingSensor
from tests.support.forwarding_store import Call, ForwardingStore


class LosesFirstSaveReply(ForwardingStore):
    """The real feature store, but the reply of the first result write that saves attribution
    is lost after Redis applied it."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self.lost = 0

    def written(self, attribution: Sequence[AttributionSave]) -> None:
        if attribution and not self.lost:
            self.lost += 1
            raise ConnectionError("reply lost")


class AnotherWriterFirst(ForwardingStore):
    """The real feature store, where another writer stores its own list for every trigger just
    before each result write (the lists of two writers of one event racing)."""

    async def before(self, call: Call, lists: Sequence[StoredList] = ()) -> None:
        if call == "write":
            theirs = [replace(item, message_json=their_list(item.message_json)) for item in lists]
            await self._store.write_results({}, theirs, {})


def their_list(message_json: str) -> str:
    ours = RecommendationMessage.model_validate_json(message_json)
    return ours.model_copy(update={"model_version": "m-theirs"}).model_dump_json()


def late_skip(i: int, track: str) -> TrackEnd:
    e = end(i, track, skipped=False)
    return e.model_copy(update={"reason_end": "fwdbtn"})


#: One session; FakeRanker lists (k=5) in the comments.
SESSION: list[PlayEvent] = [
    start(1, "t10"),  # list A = t0 t1 t2 t3 t4
    end(1, "t10", skipped=False),
    start(2, "t2"),  # A: hit at rank 3; list B = t0 t1 t3 t4 t5
    end(2, "t2", skipped=True),  # A: skip_early
    start(3, "t40"),  # B: miss; list C = t0 t1 t3 t4 t5
    late_skip(3, "t40"),  # B: skip_late
    start(4, "t1"),  # C: hit at rank 2; list D = t0 t3 t4 t5 t6
    start(5, "t3"),  # C: no_end (t1 never ended); D: hit at rank 2; list E
    end(5, "t3", skipped=False),  # D: listened
]
EXPECTED = {  # exposure id -> (hit, rank, outcome, next track)
    "s1-1-s": (True, 3, "skip_early", "t2"),
    "s1-2-s": (False, None, "skip_late", "t40"),
    "s1-3-s": (True, 2, "no_end", "t1"),
    "s1-4-s": (True, 2, "listened", "t3"),
}


def run_pipeline(
    settings: Settings,
    body: Callable[[Pipeline, FakePublisher, RecordingSensor, Any], Awaitable[None]],
    *,
    lose_first_save: bool = False,
    another_writer_first: bool = False,
) -> None:
    async def main() -> None:
        redis = async_redis_client(settings)
        try:
            redis_store = feature_store_for(settings, redis)
            await redis_store.load_scripts()
            store: FeatureStore = redis_store
            if lose_first_save:
                store = LosesFirstSaveReply(redis_store)
            if another_writer_first:
                store = AnotherWriterFirst(redis_store)
            sensor = RecordingSensor()
            publisher = FakePublisher()

            async def no_sleep(seconds: float) -> None:
                pass

            pipeline = Pipeline(
                settings,
                store,
                FakeRanker(model_version="m-1"),
                publisher,
                sensor=sensor,
                attribution=Attribution(sensor, settings.topic_outcomes),
                clock=lambda: NOW_S,
                sleep=no_sleep,
            )
            await body(pipeline, publisher, sensor, redis)
        finally:
            await redis.aclose()

    asyncio.run(main())


def outcomes(settings: Settings, publisher: FakePublisher) -> list[OutcomeMessage]:
    return [OutcomeMessage.model_validate_json(v) for v in publisher.on(settings.topic_outcomes)]


def check_expected(found: Sequence[OutcomeMessage], model_version: str = "m-1") -> None:
    by_id = {o.exposure_id: o for o in found}
    assert len(by_id) == len(found), "one outcome per exposure"
    got = {eid: (o.hit, o.rank, o.outcome, o.next_track_id) for eid, o in by_id.items()}
    assert got == EXPECTED
    for o in found:
        assert o.model_version == model_version and o.variant is None and o.list_length == 5
        assert o.session_id == "s1" and o.user_id == "u1"


def test_hits_ranks_and_outcomes_of_a_hand_built_session_one_batch_at_a_time(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(create_topics=False, top_k=5)
    messages = raw(SESSION)

    async def body(pipeline: Pipeline, publisher: FakePublisher, sensor: Any, redis: Any) -> None:
        for msg in messages:
            await pipeline.process_batch([msg])
        found = outcomes(settings, publisher)
        check_expected(found)
        keys = publisher_keys(settings, publisher)
        assert keys == [o.exposure_id.encode() for o in found]  # keyed by exposure id
        assert len(sensor.of("exposure")) == 5  # five lists shown (A..E)
        assert sorted(sensor.of("outcome")) == sorted(
            (o.exposure_id, o.hit, o.outcome) for o in found
        )
        # the whole session again, same offsets (a redelivery after a crash before the commit):
        # the same outcome bytes again, nothing new
        before = publisher.on(settings.topic_outcomes)
        await pipeline.process_batch(messages)
        again = publisher.on(settings.topic_outcomes)[len(before) :]
        assert sorted(again) == sorted(before)
        # a copy of the last event sent again at a later offset: its outcome again, same bytes
        await pipeline.process_batch(raw([SESSION[-1]], first_offset=100))
        assert publisher.on(settings.topic_outcomes)[-1] == before[-1]
        assert set(publisher.on(settings.topic_outcomes)) == set(before)

    run_pipeline(settings, body)


def test_the_same_outcomes_when_the_session_comes_in_one_batch_and_a_save_reply_is_lost(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(create_topics=False, top_k=5)

    async def body(pipeline: Pipeline, publisher: FakePublisher, sensor: Any, redis: Any) -> None:
        await pipeline.process_batch(raw(SESSION[:5]))
        await pipeline.process_batch(raw(SESSION[5:], first_offset=5))
        found = outcomes(settings, publisher)
        # the first batch's outcome was published once: its retry republished the stored one
        check_expected(found)
        ttl = await redis.ttl(Keys(settings.redis_key_prefix).session_attribution("s1"))
        assert 0 < ttl <= settings.session_ttl_seconds

    run_pipeline(settings, body, lose_first_save=True)


def test_every_split_of_the_session_into_batches_gives_the_same_outcome_bytes(
    settings_factory: SettingsFactory,
) -> None:
    bodies: list[list[bytes]] = []

    def run_split(settings: Settings, cut: int) -> None:
        async def body(
            pipeline: Pipeline, publisher: FakePublisher, sensor: Any, redis: Any
        ) -> None:
            messages = raw(SESSION)
            for i in range(0, len(messages), cut):
                await pipeline.process_batch(messages[i : i + cut])
            check_expected(outcomes(settings, publisher))
            bodies.append(sorted(publisher.on(settings.topic_outcomes)))

        run_pipeline(settings, body)

    for cut in (1, 4, 9):
        run_split(settings_factory(create_topics=False, top_k=5), cut)
    assert bodies[0] == bodies[1] == bodies[2]


def publisher_keys(settings: Settings, publisher: FakePublisher) -> list[bytes | None]:
    return [k for t, k, _ in publisher.records if t == settings.topic_outcomes]


def test_when_another_writer_stored_a_list_first_its_list_is_the_one_attributed(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(create_topics=False, top_k=5)
    messages = raw(SESSION)

    async def body(pipeline: Pipeline, publisher: FakePublisher, sensor: Any, redis: Any) -> None:
        for msg in messages:
            await pipeline.process_batch([msg])
        published = publisher.on(settings.topic_recommendations)
        assert {RecommendationMessage.model_validate_json(v).model_version for v in published} == {
            "m-theirs"
        }
        found = outcomes(settings, publisher)
        check_expected(found, model_version="m-theirs")  # attributed to the lists published
        assert len(sensor.of("exposure")) == 5  # each list shown once, not once per fold
        # redelivered: the same outcome bytes, from the state saved after the second fold
        before = publisher.on(settings.topic_outcomes)
        await pipeline.process_batch(messages)
        assert sorted(publisher.on(settings.topic_outcomes)[len(before) :]) == sorted(before)

    run_pipeline(settings, body, another_writer_first=True)
