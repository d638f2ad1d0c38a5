"""The worker's batch loop: events in from the agent, batches through the pipeline, offsets out.

The agent puts every event of the stream into a :class:`streams.batching.Batcher`, holding its
offset (:class:`streams.offsets.HeldOffsets`); a processing loop, started by the agent, takes
micro-batches from it (everything that arrived while the last batch was processed, at most
``settings.batch_max_events``; while the consumer has fetched more than reached the buffer, it
lingers for them, see :mod:`streams.batching`) and starts each in the pipeline. A started
batch's Redis effects are durable; its Kafka acknowledgements are awaited in a task of its own
while the next batch is processed, at most :data:`MAX_BATCHES_AWAITING_ACKS` at a time, and only
then are its offsets released. No timer: an idle worker takes an event the moment it arrives, a
busy one takes bigger batches.

With the worker's :class:`streams.ownership.Ownership`, every event first passes its gap guard:
a message past a hole in its partition's offsets is not processed (nor held: the stream acks it)
and the consumer is rewound to the hole (:func:`streams.ownership.rewind`); a message of a
partition that is not ours (fenced, or revoked) is dropped the same way. The Redis watermark,
not Kafka's committed offset, says where a partition resumes, so those acks are harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Sequence
from typing import Protocol

from faust.types import TP, ConsumerT, EventT
from faust.types.tuples import Message

from nowplaying.settings import Settings
from streams.batching import Backlog, Batcher
from streams.instrumentation import CountingSensor, PipelineSensor
from streams.offsets import HeldOffsets
from streams.ownership import (
    REWIND_PAUSE_SECONDS,
    Admission,
    Claimer,
    Ownership,
    rewind,
    take_over,
)
from streams.pipeline import RawMessage
from streams.retry import Retrier

log = logging.getLogger(__name__)

#: Batches whose Kafka acknowledgements may be awaited while the next batch is processed.
MAX_BATCHES_AWAITING_ACKS = 4


class BatchStarter(Protocol):
    """What the loop needs of :class:`streams.pipeline.Pipeline`."""

    async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]: ...


class BatchLoop:
    """Runs the agent's stream through the pipeline, one batch at a time; ``counts`` (a sensor
    the pipeline reports to) gives each batch's log line. With ``ownership``, the gap guard
    (reported to ``sensor``) admits each event, and ``claimer`` (the store) claims an assigned
    partition whose assignment signal has not come yet; ``rewind_pause_seconds`` is how long a
    rewound partition stays paused (:data:`streams.ownership.REWIND_PAUSE_SECONDS`)."""

    def __init__(
        self,
        settings: Settings,
        pipeline: BatchStarter,
        offsets: HeldOffsets,
        counts: CountingSensor,
        *,
        ownership: Ownership | None = None,
        claimer: Claimer | None = None,
        sensor: PipelineSensor | None = None,
        rewind_pause_seconds: float = REWIND_PAUSE_SECONDS,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._offsets = offsets
        self._counts = counts
        self._ownership = ownership
        self._claimer = claimer
        self._sensor: PipelineSensor = sensor if sensor is not None else counts
        self._claim_retrier = Retrier(settings, self._sensor, asyncio.sleep)
        self._rewind_pause = rewind_pause_seconds

    async def consume(self, events: AsyncIterable[EventT[bytes]], consumer: ConsumerT) -> None:
        """The agent's body: hold and buffer every event of the stream; a processing loop
        (started here, stopped with the agent) takes the batches."""
        s = self._settings
        backlog: Backlog[TP] = Backlog(consumer.highwater)
        batcher: Batcher[EventT[bytes]] = Batcher(
            s.batch_max_events, linger_seconds=s.batch_within_seconds, backlog=backlog
        )
        processor = asyncio.ensure_future(self._process_batches(batcher, consumer))
        try:
            async for event in events:
                message = event.message
                if not await self._admit(message, consumer):
                    continue
                self._offsets.hold(message)
                backlog.note(message.tp, message.offset)
                await batcher.put(event)
                if processor.done():  # it never returns; an exception is a bug: surface it
                    processor.result()
            await batcher.drained()
        finally:
            processor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await processor

    async def _admit(self, message: Message, consumer: ConsumerT) -> bool:
        """The gap guard: whether to process the message; on a gap, rewind its partition."""
        if self._ownership is None:
            return True
        tp, offset = message.tp, message.offset
        verdict = self._ownership.admit(tp.topic, tp.partition, offset)
        if verdict is Admission.NOT_OURS and await self._claim(tp, consumer):
            verdict = self._ownership.admit(tp.topic, tp.partition, offset)
        if verdict is not Admission.GAP:
            return verdict is Admission.PROCESS
        token = self._ownership.start_rewind(tp.topic, tp.partition)
        if token is None:
            return False  # fetched before the rewind in progress: it will come again
        if await self._deleted_below(tp, consumer):
            self._ownership.end_rewind(tp.topic, tp.partition, token)
            return self._ownership.admit(tp.topic, tp.partition, offset) is Admission.PROCESS
        expected = self._ownership.expected(tp.topic, tp.partition)
        assert expected is not None  # a gap is measured from it
        log.warning(
            "gap in %s[%d]: offset %d arrived, %d expected; rewinding",
            tp.topic,
            tp.partition,
            offset,
            expected,
        )
        self._sensor.on_offset_gap(tp.topic, tp.partition, expected, offset)
        await rewind(
            consumer, self._ownership, tp, expected, token=token, pause_seconds=self._rewind_pause
        )
        return False

    async def _claim(self, tp: TP, consumer: ConsumerT) -> bool:
        """A message of a partition not claimed yet: claim it now if it is assigned (Faust's
        assignment signal may come after the streams resumed); whether it was."""
        assert self._ownership is not None
        if self._claimer is None or self._ownership.claimed(tp.topic, tp.partition):
            return False  # fenced: not ours any more
        tp = TP(tp.topic, tp.partition)
        if tp not in consumer.assignment():
            return False
        await take_over(self._ownership, self._claimer, consumer, {tp}, self._claim_retrier)
        return self._ownership.claimed(tp.topic, tp.partition)

    async def _deleted_below(self, tp: TP, consumer: ConsumerT) -> bool:
        """Whether Kafka no longer keeps the expected offset (retention deleted it unapplied: a
        rewind could never reach it); then the partition restarts at its earliest offset."""
        assert self._ownership is not None
        expected = self._ownership.expected(tp.topic, tp.partition)
        earliest = (await consumer.earliest_offsets(tp)).get(tp)
        if expected is None or earliest is None or earliest <= expected:
            return False
        log.error(
            "%s[%d]: offsets %d to %d were deleted before they were applied; going on from %d",
            tp.topic,
            tp.partition,
            expected,
            earliest - 1,
            earliest,
        )
        self._ownership.restart_at(tp.topic, tp.partition, earliest)
        return True

    async def _process_batches(self, batcher: Batcher[EventT[bytes]], consumer: ConsumerT) -> None:
        """Take and start batches; each batch's Kafka acknowledgements are awaited (and its
        offsets released) in a task of its own while the next batch is processed, at most
        ``MAX_BATCHES_AWAITING_ACKS`` at a time."""
        awaiting: set[asyncio.Task[None]] = set()
        try:
            while True:
                messages = [event.message for event in await batcher.take()]
                try:
                    delivered = await self._start(messages)
                except BaseException:
                    batcher.done()
                    raise
                awaiting.add(
                    asyncio.ensure_future(self._release(messages, delivered, consumer, batcher))
                )
                for done in [t for t in awaiting if t.done()]:
                    awaiting.discard(done)
                    done.result()  # never fails (the pipeline retries): if one did, surface it
                if len(awaiting) >= MAX_BATCHES_AWAITING_ACKS:
                    await asyncio.wait(awaiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in awaiting:  # cancelled: those messages stay held and are redelivered
                task.cancel()

    async def _start(self, messages: Sequence[Message]) -> Awaitable[None]:
        """Start one batch (see :meth:`Pipeline.start_batch`); log what it did when it
        dead-lettered or deduplicated anything."""
        before = self._counts.counts.copy()
        delivered = await self._pipeline.start_batch([raw_message(m) for m in messages])
        done = self._counts.counts.since(before)
        if done.dead_letters or done.duplicates:
            log.info(
                "batch of %d: %d applied, %d duplicates, dead letters %s",
                len(messages),
                done.applied,
                done.duplicates,
                dict(done.dead_letters),
            )
        return delivered

    async def _release(
        self,
        messages: Sequence[Message],
        delivered: Awaitable[None],
        consumer: ConsumerT,
        batcher: Batcher[EventT[bytes]],
    ) -> None:
        try:
            await delivered
            self._offsets.release(messages, consumer)
        finally:
            batcher.done()


def raw_message(message: Message) -> RawMessage:
    """The consumed record as the pipeline takes it (the Kafka timestamp in milliseconds)."""
    ts = message.timestamp
    return RawMessage(
        value=message.value,
        key=message.key,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=None if ts is None else int(ts * 1000),
    )
