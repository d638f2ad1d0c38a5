"""The worker's batch loop and its offset hold, on Faust's own message objects.

Faust's stream acks an event as soon as the agent asks for the next one. The agent holds one
extra reference per message and the processing loop releases it only after the pipeline
finished the message's batch, so the consumer hears of a message (and may commit its offset)
only then.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.types import ConsumerT
from faust.types.tuples import ConsumerMessage

from streams.batch_loop import MAX_BATCHES_AWAITING_ACKS, BatchLoop
from streams.instrumentation import CountingSensor
from streams.offsets import HeldOffsets
from streams.pipeline import RawMessage
from streams.web import kafka_status
from tests.support.settings import isolated_settings


class Consumer:
    """Records which offsets Faust would be allowed to commit."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True

    def highwater(self, tp: object) -> int | None:
        return None  # never fetched: the batch loop never lingers


class Pipeline:
    def __init__(self, consumer: Consumer, gate: asyncio.Event | None = None) -> None:
        self.consumer = consumer
        self.gate = gate
        self.acked_when_called: list[int] | None = None
        self.seen: list[RawMessage] = []

    async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
        self.seen = list(messages)

        async def acknowledged() -> None:
            if self.gate is not None:
                await self.gate.wait()  # Kafka has not acknowledged yet
            self.acked_when_called = list(self.consumer.acked)

        return acknowledged()


def delivered(offsets: Sequence[int]) -> list[Any]:
    """Events as the stream hands them to the agent (the conductor holds one reference)."""
    events = []
    for offset in offsets:
        msg = ConsumerMessage(
            "play-events", 1, offset, 1_795_800_000.5, 0, None, b"u1", b"{}", None
        )
        msg.incref()
        events.append(SimpleNamespace(message=msg))
    return events


def stream_ack(events: Sequence[Any], consumer: Consumer) -> None:
    """What Faust's stream does for each event once the agent moves on, whatever happened."""
    for event in events:
        event.message.ack(consumer)


class Worker:
    """The batch loop over ``pipeline`` with its held offsets."""

    def __init__(self, pipeline: Pipeline, **settings: Any) -> None:
        self.offsets = HeldOffsets()
        self.loop = BatchLoop(
            isolated_settings(**settings), pipeline, self.offsets, CountingSensor()
        )

    async def consume(self, events: AsyncIterator[Any], consumer: Consumer) -> None:
        await self.loop.consume(events, cast(ConsumerT, consumer))


async def as_stream(events: Sequence[Any], consumer: Consumer) -> AsyncIterator[Any]:
    """Faust's stream: yields each event and acks it when the agent asks for the next one."""
    for event in events:
        yield event
        stream_ack([event], consumer)


def test_offsets_are_released_only_after_the_batch_is_done() -> None:
    consumer = Consumer()
    pipeline = Pipeline(consumer)
    rt = Worker(pipeline)
    events = delivered([5, 6, 7])

    asyncio.run(rt.consume(as_stream(events, consumer), consumer))
    assert pipeline.acked_when_called == []  # nothing committable while processing
    assert consumer.acked == [5, 6, 7]  # released by the processing loop, once
    assert [m.offset for m in pipeline.seen] == [5, 6, 7]
    assert pipeline.seen[0].timestamp_ms == 1_795_800_000_500
    assert rt.offsets.position("play-events", 1) == 8
    assert rt.offsets.position("play-events", 0) is None
    assert rt.offsets.held == 0
    assert all(e.message.refcount == 0 for e in events)


def test_a_batch_cancelled_mid_way_is_never_acked() -> None:
    consumer = Consumer()
    pipeline = Pipeline(consumer, gate=asyncio.Event())
    rt = Worker(pipeline)
    events = delivered([10, 11])

    async def cancel_mid_batch() -> None:
        task = asyncio.ensure_future(rt.consume(as_stream(events, consumer), consumer))
        await asyncio.sleep(0.01)
        assert pipeline.seen  # the batch is in the pipeline, waiting at the gate
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_mid_batch())
    # The stream acked both events when the agent moved on; the hold keeps them uncommitted.
    assert consumer.acked == []
    assert all(not e.message.acked and e.message.refcount == 1 for e in events)
    assert rt.offsets.held == 2 and rt.offsets.position("play-events", 1) is None


class BrokenStart(Pipeline):
    """A crash in the processing loop: starting a batch fails."""

    async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
        raise RuntimeError("bug")


class BrokenAcks(Pipeline):
    """A failure while the batch awaits Kafka's acknowledgements."""

    async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
        async def acknowledged() -> None:
            raise RuntimeError("bug in the acknowledgement wait")

        return acknowledged()


@pytest.mark.parametrize(
    ("broken", "message"),
    [(BrokenStart, "bug"), (BrokenAcks, "acknowledgement wait")],
    ids=["starting-the-batch", "awaiting-acknowledgements"],
)
def test_a_failure_in_the_processing_loop_reaches_the_agent(
    broken: type[Pipeline], message: str
) -> None:
    consumer = Consumer()
    rt = Worker(broken(consumer))

    async def slow_stream() -> AsyncIterator[Any]:
        for event in delivered([1, 2, 3]):
            yield event
            await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError, match=message):
        asyncio.run(rt.consume(slow_stream(), consumer))
    assert consumer.acked == []


def test_the_next_batch_runs_while_the_last_awaits_its_acknowledgements() -> None:
    consumer = Consumer()
    first_acked = asyncio.Event()
    started: list[list[int]] = []

    class SlowAcks(Pipeline):
        async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
            started.append([m.offset for m in messages])
            gate = first_acked if len(started) == 1 else None

            async def acknowledged() -> None:
                if gate is not None:
                    await gate.wait()

            return acknowledged()

    rt = Worker(SlowAcks(consumer))

    async def scenario() -> list[int]:
        async def stream() -> AsyncIterator[Any]:
            for event in delivered([1, 2, 3]):
                yield event
                stream_ack([event], consumer)
                await asyncio.sleep(0.01)  # one event per batch

        task = asyncio.ensure_future(rt.consume(stream(), consumer))
        while len(started) < 3:
            await asyncio.sleep(0.005)
        acked_before = list(consumer.acked)
        first_acked.set()
        await asyncio.wait_for(task, 2)
        return acked_before

    acked_before = asyncio.run(scenario())
    assert started == [[1], [2], [3]]  # batches 2 and 3 ran while batch 1 awaited Kafka
    assert acked_before == [2, 3]  # ... and only theirs were released
    assert sorted(consumer.acked) == [1, 2, 3]
    assert rt.offsets.position("play-events", 1) == 4


def test_at_most_four_batches_await_their_acknowledgements() -> None:
    consumer = Consumer()
    offsets = range(1, 7)
    acks = {offset: asyncio.Event() for offset in offsets}  # Kafka's, per one-event batch
    started: list[int] = []

    class GatedAcks(Pipeline):
        async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
            (offset,) = (m.offset for m in messages)
            started.append(offset)

            async def acknowledged() -> None:
                await acks[offset].wait()

            return acknowledged()

    rt = Worker(GatedAcks(consumer), batch_max_events=1)

    async def settle() -> None:
        for _ in range(100):  # let every ready task run (no clock involved)
            await asyncio.sleep(0)

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        task = asyncio.ensure_future(rt.consume(as_stream(delivered(offsets), consumer), consumer))
        await settle()
        blocked = list(started)
        acks[2].set()  # the second batch is acknowledged: one slot frees
        await settle()
        after_one = list(started)
        released = list(consumer.acked)
        for ack in acks.values():
            ack.set()
        await asyncio.wait_for(task, 2)
        return blocked, after_one, released

    blocked, after_one, released = asyncio.run(scenario())
    assert MAX_BATCHES_AWAITING_ACKS == 4
    assert blocked == [1, 2, 3, 4]  # the fifth waits for a slot
    assert after_one == [1, 2, 3, 4, 5]
    assert released == [2]  # only the acknowledged batch's offset
    assert started == [1, 2, 3, 4, 5, 6]
    assert sorted(consumer.acked) == [1, 2, 3, 4, 5, 6] and rt.offsets.held == 0


# --- the worker's readiness ---------------------------------------------------------------------


class Assigned:
    """A consumer holding ``partitions`` (None: not started, its assignment raises)."""

    def __init__(self, partitions: int | None) -> None:
        self.partitions = partitions

    def assignment(self) -> set[int]:
        if self.partitions is None:
            raise RuntimeError("not started")
        return set(range(self.partitions))


def test_kafka_is_not_ready_while_producing_fails_and_says_what_the_consumer_holds() -> None:
    def status(partitions: int | None, failing: dict[str, str]) -> tuple[bool, str]:
        kafka = kafka_status(cast(ConsumerT, Assigned(partitions)), failing)
        return kafka.ok, kafka.detail

    assert status(3, {}) == (True, "the consumer holds 3 partitions")
    assert status(0, {"redis": "down"}) == (True, "the consumer holds 0 partitions")
    ok, detail = status(1, {"kafka": "KafkaTimeoutError: no broker"})
    assert not ok
    assert (
        detail
        == "the last produce failed: KafkaTimeoutError: no broker; the consumer holds 1 partition"
    )
    assert status(None, {}) == (True, "no consumer assignment (RuntimeError)")
