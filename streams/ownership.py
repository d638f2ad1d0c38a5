"""Which input partitions this worker owns, at which epoch, and the offset each one expects next.

On every assignment the worker claims its partitions in Redis
(:meth:`features.store.FeatureStore.claim_partitions`): each partition's epoch is raised by one,
so any earlier owner's writes to it are fenced from then on, and its watermark ``next`` (every
offset below it has been applied or dead-lettered) becomes the offset the stream must deliver
next. :meth:`Ownership.admit` is the gap guard of the consume path, per message:

* offset below the expected one: a redelivery, processed as usual (the store dedupes it);
* offset equal to it: the next one, processed, and the expected offset moves on;
* offset above it: a gap (records the consumer skipped): the message is not processed, and the
  batch loop rewinds the consumer to the expected offset (:func:`rewind`);
* a partition fenced (a newer owner holds it) or not claimed: not ours, not processed.

Without a watermark (nothing ever applied from the partition), the first offset delivered is
taken as the start, as Kafka's committed offset (or the earliest) would have it. See
docs/operations.md "Ordering and fencing" for why this keeps each session's log in order.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Final, Protocol

from faust.types import TP, ConsumerT

from features.store import Claim, TopicPartition
from streams.retry import Retrier

log = logging.getLogger(__name__)

#: How long a partition being rewound stays paused: Faust's fetcher may still be handing over
#: records of it fetched before the seek (a fetch waits at most 1 s), which move Faust's read
#: offset past the rewound records again; the resume seeks once more first (see :func:`rewind`).
REWIND_PAUSE_SECONDS: Final = 1.0


class Admission(enum.Enum):
    """What the consume path does with a message (see the module docstring)."""

    PROCESS = "process"
    GAP = "gap"
    NOT_OURS = "not_ours"


class Ownership:
    """This worker's partitions: the epoch of each claim, the offset each expects next, and the
    partitions fenced or being rewound. Only the worker's event loop touches it."""

    def __init__(self) -> None:
        self._epochs: dict[TopicPartition, int] = {}
        self._expected: dict[TopicPartition, int] = {}
        self._fenced: set[TopicPartition] = set()
        #: partition -> the rewind in progress (a token: a revocation or a newer rewind wins).
        self._rewinding: dict[TopicPartition, int] = {}
        self._rewinds = 0
        #: Raised by every revocation: a claim that started before one is not taken.
        self.generation = 0
        #: Partitions whose claim is in flight, and the claim's end.
        self.claiming: dict[TopicPartition, asyncio.Future[None]] = {}

    def assign(self, claims: Mapping[TopicPartition, Claim], starts: Mapping[TP, int]) -> None:
        """The partitions claimed: ``claims`` from the store, ``starts`` the earliest offset
        Kafka still has of each (a watermark below it cannot be reached any more)."""
        earliest = {(t.topic, t.partition): offset for t, offset in starts.items()}
        for tp, claim in claims.items():
            self._epochs[tp] = claim.epoch
            self._fenced.discard(tp)
            self._rewinding.pop(tp, None)
            self._expected.pop(tp, None)
            if claim.next_offset is not None:
                self._expected[tp] = max(claim.next_offset, earliest.get(tp, 0))

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget the partitions (their epochs are no longer ours to write with)."""
        self.generation += 1
        for tp in partitions:
            self._epochs.pop(tp, None)
            self._expected.pop(tp, None)
            self._fenced.discard(tp)
            self._rewinding.pop(tp, None)

    def epoch(self, topic: str, partition: int) -> int | None:
        """The epoch this worker writes the partition with; None when it must not write it
        (never claimed, revoked or fenced)."""
        tp = (topic, partition)
        return None if tp in self._fenced else self._epochs.get(tp)

    def claimed(self, topic: str, partition: int) -> bool:
        """Whether the partition was claimed since it was last revoked (fenced ones too)."""
        return (topic, partition) in self._epochs

    def fence(self, topic: str, partition: int) -> None:
        """The store refused a batch of the partition: a newer owner holds it."""
        self._fenced.add((topic, partition))

    def expected(self, topic: str, partition: int) -> int | None:
        """The offset the partition's stream must deliver next (None: not known yet)."""
        return self._expected.get((topic, partition))

    def admit(self, topic: str, partition: int, offset: int) -> Admission:
        """The gap guard (see the module docstring); moves the expected offset on."""
        tp = (topic, partition)
        if self.epoch(topic, partition) is None:
            return Admission.NOT_OURS
        expected = self._expected.get(tp)
        if expected is None or offset == expected:
            self._expected[tp] = offset + 1
            return Admission.PROCESS
        return Admission.PROCESS if offset < expected else Admission.GAP

    def restart_at(self, topic: str, partition: int, offset: int) -> None:
        """Expect ``offset`` next (what Kafka still keeps starts there)."""
        self._expected[(topic, partition)] = offset

    def start_rewind(self, topic: str, partition: int) -> int | None:
        """A gap: the token of a new rewind, or None when one is in progress already."""
        tp = (topic, partition)
        if tp in self._rewinding:
            return None
        self._rewinds += 1
        self._rewinding[tp] = self._rewinds
        return self._rewinds

    def end_rewind(self, topic: str, partition: int, token: int) -> bool:
        """The rewind ``token`` is over; whether the partition is still ours to resume."""
        tp = (topic, partition)
        if self._rewinding.get(tp) != token:
            return False  # revoked (and maybe assigned again) meanwhile
        del self._rewinding[tp]
        return self.epoch(topic, partition) is not None


class Claimer(Protocol):
    """What a take-over needs of :class:`features.store.FeatureStore`."""

    async def claim_partitions(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Claim]: ...


async def take_over(
    ownership: Ownership,
    store: Claimer,
    consumer: ConsumerT,
    partitions: Set[TP],
    retrier: Retrier,
) -> None:
    """Claim the assigned ``partitions`` not claimed since their last revocation (Redis
    retried until it answers): from now on an earlier owner's writes to them are fenced.

    Faust sends its assignment signal while its recovery may already be resuming the streams,
    so the batch loop also calls this for a message of an assigned partition not claimed yet:
    the two share one claim per partition and assignment (a second claim would raise the epoch
    again and fence this worker's own batches in flight)."""
    waits: list[asyncio.Future[None]] = []
    todo: list[TP] = []
    for tp in partitions:
        key = (tp.topic, tp.partition)
        if key in ownership.claiming:
            waits.append(ownership.claiming[key])
        elif not ownership.claimed(*key):
            todo.append(tp)
    if todo:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = sorted((tp.topic, tp.partition) for tp in todo)
        generation = ownership.generation
        ownership.claiming.update(dict.fromkeys(keys, done))
        try:
            claims = await retrier.run("redis", lambda: store.claim_partitions(keys))
            starts = await consumer.earliest_offsets(*todo)
            if ownership.generation == generation:  # else revoked meanwhile: not ours
                ownership.assign(claims, starts)
                _log_claims(ownership, claims)
        finally:
            for key in keys:
                ownership.claiming.pop(key, None)
            done.set_result(None)
    for wait in waits:
        await wait


def _log_claims(ownership: Ownership, claims: Mapping[TopicPartition, Claim]) -> None:
    for tp, claim in sorted(claims.items()):
        log.info(
            "claimed %s[%d] at epoch %d; next offset %s",
            tp[0],
            tp[1],
            claim.epoch,
            ownership.expected(*tp),
        )


async def rewind(
    consumer: ConsumerT,
    ownership: Ownership,
    tp: TP,
    offset: int,
    *,
    token: int,
    pause_seconds: float = REWIND_PAUSE_SECONDS,
) -> None:
    """Seek the consumer back to ``offset`` of ``tp``: pause it (Faust's fetcher then hands over
    none of the records it already holds of it), seek, and ``pause_seconds`` later, unless it
    was revoked or rewound again meanwhile, seek again and resume it. (A message's ``tp`` is the
    driver's own named tuple; Faust's partition sets want its ``TP``.)

    The second seek matters: Faust's fetcher may still deliver records of ``tp`` fetched before
    the first one, and each moves Faust's read offset past them, so it would drop the rewound
    records when they come again. When such a record was the partition's last, no later record
    shows a gap to rewind from, and the partition would stall."""
    tp = TP(tp.topic, tp.partition)
    consumer.pause_partitions({tp})
    if not await _seek(consumer, tp, offset):
        if ownership.end_rewind(tp.topic, tp.partition, token) and tp in consumer.assignment():
            consumer.resume_partitions({tp})
        return

    async def resume() -> None:
        await asyncio.sleep(pause_seconds)
        if not ownership.end_rewind(tp.topic, tp.partition, token):
            return  # revoked, or rewound again: that rewind resumes it
        if tp in consumer.assignment():
            await _seek(consumer, tp, offset)  # Faust's read offset back to the rewound records
            consumer.resume_partitions({tp})

    task = asyncio.ensure_future(resume())
    _RESUMING.add(task)
    task.add_done_callback(_RESUMING.discard)


#: The pending resumes of rewinds (a reference each, until it is done).
_RESUMING: set[asyncio.Future[None]] = set()


async def _seek(consumer: ConsumerT, tp: TP, offset: int) -> bool:
    try:
        await consumer.seek(tp, offset)
    except Exception as exc:  # e.g. revoked meanwhile: the next gap message tries again
        log.warning("cannot rewind %s[%d] to %d: %r", tp.topic, tp.partition, offset, exc)
        return False
    return True
