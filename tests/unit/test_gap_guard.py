"""The gap guard of the consume path (:mod:`streams.ownership`) and the partition ownership it
keeps, on Faust's own message objects and a consumer that records its seeks.

A fetch that skipped offsets (Faust drops the records of a fetch that returns during a
rebalance and, for a partition with no committed offset, never seeks back) must never let a
later offset reach the pipeline before the skipped ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any, cast

from aiokafka import TopicPartition
from faust.types import TP, ConsumerT
from faust.types.tuples import ConsumerMessage

from features.store import Claim
from streams.batch_loop import BatchLoop
from streams.instrumentation import CountingSensor
from streams.offsets import HeldOffsets
from streams.ownership import Admission, Ownership, rewind, take_over
from streams.pipeline import RawMessage
from streams.retry import Retrier
from tests.support.fakes import MemoryStore, RecordingSensor
from tests.support.settings import isolated_settings

TOPIC = "play-events"


class Consumer:
    """What the batch loop and the guard use of Faust's consumer; records every call."""

    def __init__(self, earliest: int = 0) -> None:
        self.acked: list[int] = []
        self.calls: list[tuple[str, int]] = []
        self.sought = asyncio.Event()
        self.earliest = earliest

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest for tp in tps}

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True

    def highwater(self, tp: object) -> int | None:
        return None  # never fetched: the batch loop never lingers

    async def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(("seek", offset))
        self.sought.set()

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        assert all(type(tp) is TP for tp in tps)  # Faust's sets of partitions hold TPs only
        self.calls += [("pause", tp.partition) for tp in tps]

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        assert all(type(tp) is TP for tp in tps)
        self.calls += [("resume", tp.partition) for tp in tps]

    def assignment(self) -> set[TP]:
        return {TP(TOPIC, 1)}


class Pipeline:
    """Records the offsets of every batch, in order."""

    def __init__(self) -> None:
        self.offsets: list[int] = []

    async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
        self.offsets += [m.offset for m in messages]
        return asyncio.sleep(0)


def event(offset: int) -> Any:
    """As Faust's Kafka driver makes them: ``tp`` is aiokafka's own named tuple."""
    msg = ConsumerMessage(
        TOPIC,
        1,
        offset,
        1_795_800_000.5,
        0,
        None,
        b"u1",
        b"{}",
        None,
        tp=cast(TP, TopicPartition(TOPIC, 1)),
    )
    msg.incref()  # the conductor's reference
    return SimpleNamespace(message=msg)


def test_a_gap_is_never_processed_and_the_consumer_is_rewound_to_it() -> None:
    consumer = Consumer()
    pipeline = Pipeline()
    ownership = Ownership()
    ownership.assign({(TOPIC, 1): Claim(epoch=3, next_offset=0)}, {})
    sensor = RecordingSensor()
    loop = BatchLoop(
        isolated_settings(batch_max_events=2),
        pipeline,
        HeldOffsets(),
        CountingSensor(),
        ownership=ownership,
        sensor=sensor,
        rewind_pause_seconds=0.0,
    )

    async def stream() -> AsyncIterator[Any]:
        """0-4 and 7-9 fetched (5 and 6 skipped); after the seek, 5-9 fetched again."""
        for offset in [0, 1, 2, 3, 4, 7, 8, 9]:
            ev = event(offset)
            yield ev
            ev.message.ack(consumer)  # the stream acks an event once the agent moves on
        await consumer.sought.wait()
        for offset in range(5, 10):
            ev = event(offset)
            yield ev
            ev.message.ack(consumer)

    async def scenario() -> None:
        await loop.consume(stream(), cast(ConsumerT, consumer))
        for _ in range(10):  # let the resume scheduled by the rewind run
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert pipeline.offsets == list(range(10))  # never 7 before 5 and 6; each offset once
    # one rewind for the hole: paused, seeked back to 5, seeked again and resumed; 8 and 9
    # (fetched before the seek) dropped without another
    assert consumer.calls == [("pause", 1), ("seek", 5), ("seek", 5), ("resume", 1)]
    assert sensor.of("offset_gap") == [(TOPIC, 1, 5, 7)]
    assert ownership.expected(TOPIC, 1) == 10
    assert sorted(consumer.acked) == [0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 8, 9, 9]


def test_a_hole_that_retention_deleted_is_not_rewound_forever() -> None:
    consumer = Consumer(earliest=200)  # Kafka deleted offsets below 200, 5..199 never applied
    pipeline = Pipeline()
    ownership = Ownership()
    ownership.assign({(TOPIC, 1): Claim(epoch=1, next_offset=5)}, {})  # an earlier look
    loop = BatchLoop(
        isolated_settings(), pipeline, HeldOffsets(), CountingSensor(), ownership=ownership
    )

    async def stream() -> AsyncIterator[Any]:
        for offset in (200, 201):
            ev = event(offset)
            yield ev
            ev.message.ack(consumer)

    asyncio.run(loop.consume(stream(), cast(ConsumerT, consumer)))
    assert pipeline.offsets == [200, 201]  # going on from what Kafka keeps
    assert consumer.calls == []  # no rewind to offsets that cannot come back


def test_messages_before_the_assignment_signal_claim_their_partition_once() -> None:
    """Faust's recovery may resume the streams before its assignment signal is handled: the
    first messages claim the partition themselves, and the signal's claim then finds it done
    (a second claim would fence the worker's own batches)."""
    consumer = Consumer()
    pipeline = Pipeline()
    ownership = Ownership()
    store = MemoryStore()
    loop = BatchLoop(
        isolated_settings(),
        pipeline,
        HeldOffsets(),
        CountingSensor(),
        ownership=ownership,
        claimer=store,
    )
    retrier = Retrier(isolated_settings(), RecordingSensor(), asyncio.sleep)

    async def stream() -> AsyncIterator[Any]:
        for offset in (0, 1, 2):
            ev = event(offset)
            yield ev
            ev.message.ack(consumer)

    async def scenario() -> None:
        agent = asyncio.ensure_future(loop.consume(stream(), cast(ConsumerT, consumer)))
        signal = asyncio.ensure_future(
            take_over(ownership, store, cast(ConsumerT, consumer), {TP(TOPIC, 1)}, retrier)
        )
        await asyncio.gather(agent, signal)
        await take_over(ownership, store, cast(ConsumerT, consumer), {TP(TOPIC, 1)}, retrier)

    asyncio.run(scenario())
    assert pipeline.offsets == [0, 1, 2]
    assert ownership.epoch(TOPIC, 1) == 1  # one claim for the assignment
    assert asyncio.run(store.claim_partitions([(TOPIC, 1)]))[(TOPIC, 1)].epoch == 2


def test_the_guard_admits_redeliveries_and_the_next_offset_and_stops_at_a_gap() -> None:
    ownership = Ownership()
    ownership.assign({(TOPIC, 0): Claim(epoch=2, next_offset=10)}, {})
    verdicts = [ownership.admit(TOPIC, 0, o) for o in (3, 9, 10, 11, 13, 12)]
    assert verdicts == [
        Admission.PROCESS,  # below the watermark: a redelivery, deduped by the store
        Admission.PROCESS,
        Admission.PROCESS,  # the next one
        Admission.PROCESS,
        Admission.GAP,  # 12 is missing
        Admission.PROCESS,
    ]
    assert ownership.expected(TOPIC, 0) == 13
    assert ownership.admit(TOPIC, 5, 0) is Admission.NOT_OURS  # never claimed


def test_without_a_watermark_the_first_offset_delivered_is_the_start() -> None:
    ownership = Ownership()
    ownership.assign({(TOPIC, 0): Claim(epoch=1, next_offset=None)}, {})
    assert ownership.expected(TOPIC, 0) is None
    assert ownership.admit(TOPIC, 0, 40) is Admission.PROCESS
    assert ownership.admit(TOPIC, 0, 42) is Admission.GAP
    assert ownership.expected(TOPIC, 0) == 41


def test_a_watermark_below_what_kafka_still_keeps_starts_at_the_earliest_offset() -> None:
    ownership = Ownership()
    ownership.assign({(TOPIC, 0): Claim(epoch=1, next_offset=5)}, {TP(TOPIC, 0): 200})
    assert ownership.expected(TOPIC, 0) == 200


def test_a_fenced_or_revoked_partition_is_not_ours_and_a_new_claim_gives_it_back() -> None:
    ownership = Ownership()
    ownership.assign({(TOPIC, 0): Claim(1, 0), (TOPIC, 1): Claim(4, 7)}, {})
    ownership.fence(TOPIC, 0)
    ownership.revoke([(TOPIC, 1)])
    assert ownership.epoch(TOPIC, 0) is None and ownership.epoch(TOPIC, 1) is None
    assert ownership.admit(TOPIC, 0, 0) is Admission.NOT_OURS
    assert ownership.admit(TOPIC, 1, 7) is Admission.NOT_OURS
    ownership.assign({(TOPIC, 0): Claim(2, 0)}, {})
    assert ownership.epoch(TOPIC, 0) == 2


def test_a_rewind_ends_only_with_its_own_token_and_a_revocation_cancels_it() -> None:
    ownership = Ownership()
    ownership.assign({(TOPIC, 0): Claim(1, 0)}, {})
    first = ownership.start_rewind(TOPIC, 0)
    assert first is not None
    assert ownership.start_rewind(TOPIC, 0) is None  # one at a time
    assert ownership.end_rewind(TOPIC, 0, first)  # still ours: resume it
    second = ownership.start_rewind(TOPIC, 0)
    assert second is not None
    ownership.revoke([(TOPIC, 0)])
    assert not ownership.end_rewind(TOPIC, 0, second)  # revoked meanwhile: leave it paused


def test_a_resumed_rewind_seeks_again_past_records_delivered_during_the_pause() -> None:
    """Faust's fetcher moves its read offset with every record it hands over, also with records
    of the paused partition fetched before the seek; it then drops the rewound records as already
    read. The resume seeks again, so the read offset is the rewound one when fetching resumes,
    even when no later record would show a gap (the partition's last record was the stale one)."""
    consumer = Consumer()
    read_offset: dict[str, int] = {}

    async def seek(tp: TP, offset: int) -> None:
        consumer.calls.append(("seek", offset))
        read_offset["now"] = offset

    consumer.seek = seek  # type: ignore[method-assign]
    ownership = Ownership()
    ownership.assign({(TOPIC, 1): Claim(epoch=3, next_offset=5)}, {})
    token = ownership.start_rewind(TOPIC, 1)
    assert token is not None

    async def scenario() -> None:
        await rewind(cast(ConsumerT, consumer), ownership, TP(TOPIC, 1), 5, token=token,
                     pause_seconds=0.01)  # fmt: skip
        assert read_offset["now"] == 5
        read_offset["now"] = 9  # a record fetched before the seek, handed over meanwhile
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert read_offset["now"] == 5  # the rewound records will be handed over again
    assert consumer.calls == [("pause", 1), ("seek", 5), ("seek", 5), ("resume", 1)]
