"""Offsets the worker holds back from Faust's commits until their batch is durable.

Faust commits the offsets of *acked* messages (periodically, on rebalance and on stop), and its
stream acks an event as soon as the agent moves on to the next one. To commit only what is
done, the agent holds one extra reference on every message it receives (:meth:`HeldOffsets.hold`,
``Message.incref``) and the batch loop releases it (:meth:`HeldOffsets.release`,
``Message.ack``) only once the message's batch is durable: its effects are in Redis and Kafka
acknowledged every record it produced. A batch interrupted by a crash or a cancellation is never
released, so it is redelivered; the Redis dedupe makes that harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import ConsumerT
from faust.types.tuples import Message


class HeldOffsets:
    """The messages held (received, not yet durable) and, per partition, the position after the
    last message released."""

    def __init__(self) -> None:
        #: Messages held and not released yet.
        self.held = 0
        self._positions: dict[tuple[str, int], int] = {}

    def hold(self, message: Message) -> None:
        """Keep the message's offset from being committed (the stream's own ack no longer
        releases it)."""
        message.incref()
        self.held += 1

    def release(self, messages: Sequence[Message], consumer: ConsumerT) -> None:
        """The messages' batch is durable: let their offsets be committed."""
        for message in messages:
            message.ack(consumer)
            key = (message.tp.topic, message.tp.partition)
            self._positions[key] = max(self._positions.get(key, 0), message.offset + 1)
        self.held -= len(messages)

    def position(self, topic: str, partition: int) -> int | None:
        """The offset after the partition's last released message (None before the first)."""
        return self._positions.get((topic, partition))
