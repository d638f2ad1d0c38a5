"""The worker's offset hold, on Faust's own message objects.

``take_events`` acks a batch's events when the loop body returns, raises or is cancelled. The
worker holds one extra reference per message while the pipeline runs, so the consumer hears
of a message (and may commit its offset) only after the pipeline finished the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types.tuples import ConsumerMessage

from streams.pipeline import BatchResult, RawMessage
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

    async def process_batch(self, messages: Sequence[RawMessage]) -> BatchResult:
        self.seen = list(messages)
        if self.gate is not None:
            await self.gate.wait()
        self.acked_when_called = list(self.consumer.acked)
        return BatchResult(messages=len(messages), applied=len(messages))


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


def take_events_ack(events: Sequence[Any], consumer: Consumer) -> None:
    """What take_events' ``finally`` does after the loop body, whatever happened in it."""
    for event in events:
        event.message.ack(consumer)


def runtime(pipeline: Pipeline) -> WorkerRuntime:
    rt = WorkerRuntime(isolated_settings(), redis=None, recommender=None)  # type: ignore[arg-type]
    rt.pipeline = pipeline  # type: ignore[assignment]
    return rt


def test_offsets_are_released_only_after_the_batch_is_done() -> None:
    consumer = Consumer()
    pipeline = Pipeline(consumer)
    rt = runtime(pipeline)
    events = delivered([5, 6, 7])

    asyncio.run(rt.handle(events, consumer))
    assert pipeline.acked_when_called == []  # nothing committable while processing
    assert consumer.acked == []  # still held by take_events until its own ack
    take_events_ack(events, consumer)
    assert consumer.acked == [5, 6, 7]
    assert [m.offset for m in pipeline.seen] == [5, 6, 7]
    assert pipeline.seen[0].timestamp_ms == 1_795_800_000_500
    assert rt.positions[("play-events", 1)] == 8


def test_a_batch_cancelled_mid_way_is_never_acked() -> None:
    consumer = Consumer()
    pipeline = Pipeline(consumer, gate=asyncio.Event())
    rt = runtime(pipeline)
    events = delivered([10, 11])

    async def cancel_mid_batch() -> None:
        task = asyncio.ensure_future(rt.handle(events, consumer))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_mid_batch())
    take_events_ack(events, consumer)  # the stream acks in its finally anyway
    assert consumer.acked == []  # ... but the hold keeps the offsets uncommitted
    assert all(not e.message.acked for e in events)
