"""The worker's offset hold, on Faust's own message objects.

Faust's stream acks an event as soon as the agent asks for the next one. The agent holds one
extra reference per message and the processing loop releases it only after the pipeline
finished the message's batch, so the consumer hears of a message (and may commit its offset)
only then.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types.tuples import ConsumerMessage

from streams.pipeline import RawMessage
from streams.worker import WorkerRuntime
from tests.support.settings import isolated_settings


class Consumer:
    """Records which offsets Faust would be allowed to commit."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True


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


def runtime(pipeline: Pipeline) -> WorkerRuntime:
    rt = WorkerRuntime(isolated_settings(), redis=None, recommender=None)  # type: ignore[arg-type]
    rt.pipeline = pipeline  # type: ignore[assignment]
    return rt


async def as_stream(events: Sequence[Any], consumer: Consumer) -> AsyncIterator[Any]:
    """Faust's stream: yields each event and acks it when the agent asks for the next one."""
    for event in events:
        yield event
        stream_ack([event], consumer)


def test_offsets_are_released_only_after_the_batch_is_done() -> None:
    consumer = Consumer()
    pipeline = Pipeline(consumer)
    rt = runtime(pipeline)
    events = delivered([5, 6, 7])

    asyncio.run(rt.consume(as_stream(events, consumer), consumer))
    assert pipeline.acked_when_called == []  # nothing committable while processing
    assert consumer.acked == [5, 6, 7]  # released by the processing loop, once
    assert [m.offset for m in pipeline.seen] == [5, 6, 7]
    assert pipeline.seen[0].timestamp_ms == 1_795_800_000_500
    assert rt.positions[("play-events", 1)] == 8
    assert all(e.message.refcount == 0 for e in events)


def test_a_batch_cancelled_mid_way_is_never_acked() -> None:
    consumer = Consumer()
    pipeline = Pipeline(consumer, gate=asyncio.Event())
    rt = runtime(pipeline)
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


def test_a_crash_in_the_processing_loop_reaches_the_agent() -> None:
    consumer = Consumer()

    class Broken(Pipeline):
        async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
            raise RuntimeError("bug")

    rt = runtime(Broken(consumer))

    async def slow_stream() -> AsyncIterator[Any]:
        for event in delivered([1, 2, 3]):
            yield event
            await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError, match="bug"):
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

    rt = runtime(SlowAcks(consumer))

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
    assert rt.positions[("play-events", 1)] == 4


def test_a_failure_while_awaiting_acknowledgements_reaches_the_agent() -> None:
    consumer = Consumer()

    class BrokenAcks(Pipeline):
        async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
            async def acknowledged() -> None:
                raise RuntimeError("bug in the acknowledgement wait")

            return acknowledged()

    rt = runtime(BrokenAcks(consumer))

    async def slow_stream() -> AsyncIterator[Any]:
        for event in delivered([1, 2, 3]):
            yield event
            await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError, match="acknowledgement wait"):
        asyncio.run(rt.consume(slow_stream(), consumer))
    assert consumer.acked == []
