"""The pipeline's side of the fence: which partitions of a batch it may write, at which epoch,
and the :class:`features.store.Fencing` and :class:`features.store.Stamp` it writes with.

The epochs come from the worker's :class:`streams.ownership.Ownership` (through the
:class:`PartitionOwner` protocol, so the pipeline stays independent of Faust); see
docs/operations.md "Ordering and fencing".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from features.store import FENCED, OUT_OF_ORDER, Applied, Fencing, Stamp, TopicPartition
from nowplaying.events import Rejection
from streams.instrumentation import PipelineSensor

log = logging.getLogger(__name__)


class PartitionOwner(Protocol):
    """What the pipeline needs of :class:`streams.ownership.Ownership`: the epoch it writes a
    partition with (None: it must not write it), and hearing that the store fenced one."""

    def epoch(self, topic: str, partition: int) -> int | None: ...

    def fence(self, topic: str, partition: int) -> None: ...


class Located(Protocol):
    """A consumed record's place: :class:`streams.pipeline.RawMessage`."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


M = TypeVar("M", bound="Located")


def writable(
    owner: PartitionOwner | None, messages: Sequence[M]
) -> tuple[Sequence[M], dict[TopicPartition, int] | None]:
    """The messages of the batch the owner may write, and its epoch of each of their
    partitions (without an owner: all of them, and no epochs: nothing is fenced)."""
    if owner is None:
        return messages, None
    epochs: dict[TopicPartition, int] = {}
    for m in messages:
        epoch = owner.epoch(m.topic, m.partition)
        if epoch is not None:
            epochs[(m.topic, m.partition)] = epoch
    return [m for m in messages if (m.topic, m.partition) in epochs], epochs


def stamp_of(message: Located, epochs: Mapping[TopicPartition, int]) -> Stamp:
    """Where the message was read, and the epoch the batch writes its partition with."""
    epoch = epochs[(message.topic, message.partition)]
    return Stamp(message.topic, message.partition, message.offset, epoch)


def batch_fencing(
    messages: Sequence[Located],
    event_messages: Sequence[Located],
    epochs: Mapping[TopicPartition, int] | None,
) -> Fencing | None:
    """The batch's claim (None without epochs): the stamp of each event (``event_messages``:
    the valid ones, in order); per partition, the epoch and the end of the batch's offsets
    there (every message, the dead-lettered ones included, so the watermark passes them too)."""
    if epochs is None:
        return None
    ends: dict[TopicPartition, tuple[int, int]] = {}
    for m in messages:
        tp = (m.topic, m.partition)
        end = max(ends[tp][1], m.offset + 1) if tp in ends else m.offset + 1
        ends[tp] = (epochs[tp], end)
    return Fencing([stamp_of(m, epochs) for m in event_messages], ends)


def session_stamps(
    ok: Sequence[tuple[Applied, Located]], epochs: Mapping[TopicPartition, int] | None
) -> dict[str, Stamp] | None:
    """Per session, the stamp of its last event of the batch (the one its state follows)."""
    if epochs is None:
        return None
    return {a.event.session_id: stamp_of(msg, epochs) for a, msg in ok}


def sort_answers(
    applied: Sequence[Applied], messages: Sequence[M]
) -> tuple[list[tuple[Applied, M]], list[tuple[M, Rejection]], set[TopicPartition]]:
    """The store's answers (``messages``: each event's record) sorted: the events applied or
    redelivered, with their records; the records to dead-letter (``out_of_order``,
    ``store_rejected``); the partitions fenced (their events are neither)."""
    ok: list[tuple[Applied, M]] = []
    letters: list[tuple[M, Rejection]] = []
    fenced: set[TopicPartition] = set()
    for a, msg in zip(applied, messages, strict=True):
        if a.refused == FENCED:
            fenced.add((msg.topic, msg.partition))
        elif a.refused == OUT_OF_ORDER:
            reason = "an event after it from the same partition is applied to the session"
            letters.append((msg, Rejection(OUT_OF_ORDER, reason)))
        elif a.error is None:
            ok.append((a, msg))
        else:
            log.error("feature store refused event %s: %s", a.event.event_id, a.error)
            letters.append((msg, Rejection("store_rejected", a.error)))
    return ok, letters, fenced


def report_fenced(
    fenced: set[TopicPartition], owner: PartitionOwner | None, sensor: PipelineSensor
) -> None:
    """Tell the owner and the sensor (and the log) which partitions have a newer owner."""
    for topic, partition in sorted(fenced):
        log.warning(
            "partition %s[%d] has a newer owner: its events are dropped, not applied",
            topic,
            partition,
        )
        if owner is not None:
            owner.fence(topic, partition)
        sensor.on_fenced_batch(topic, partition)
