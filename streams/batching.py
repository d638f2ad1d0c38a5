"""Micro-batches without a timer: each batch is what arrived while the last one was processed.

The agent hands every consumed event to a :class:`Batcher` (``put``) and a processing loop takes
batches from it (``take``). When the loop is idle, an event is taken the moment it arrives (a
batch of one, lowest latency); while a batch is being processed, the next events wait in the
buffer and become the next batch. So batches grow with the event rate by themselves, and an idle
worker wakes up for nothing: a fixed ``within`` window (Faust's ``take_events``) costs a wake-up
every window (measured: 7.6 % of an idle core at 5 ms) and delays every event by up to the window.

Under load that alone makes batches smaller than they could be: the loop takes a batch as soon
as it finishes the last one, while Faust's fetcher hands records over in small chunks. So once the
last batch held at least ``linger_after`` events (the worker is busy), the loop waits
``linger_seconds`` for more before taking a batch that is not full yet: bigger batches, less CPU
per event, where the extra milliseconds are small next to the queueing. At low rates batches stay
below ``linger_after`` and nothing waits.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """A bounded buffer between the agent (``put``) and the processing loop (``take``)."""

    def __init__(
        self,
        max_batch: int,
        *,
        capacity: int | None = None,
        linger_seconds: float = 0.0,
        linger_after: int = 1,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.max_batch = max_batch
        #: Events buffered before ``put`` waits (the agent then stops pulling from the stream,
        #: which lets Faust's flow control pause the partitions).
        self.capacity = capacity if capacity is not None else 2 * max_batch
        if self.capacity < max_batch:
            raise ValueError("capacity must hold at least one batch")
        self.linger_seconds = linger_seconds
        self.linger_after = linger_after
        self._last_batch = 0
        self._items: list[T] = []
        self._ready = asyncio.Event()  # something to take
        self._space = asyncio.Event()  # room to put
        self._space.set()
        self._idle = asyncio.Event()  # nothing buffered and no batch being processed
        self._idle.set()
        self._in_flight = 0

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Buffer one item; waits while the buffer is full."""
        while len(self._items) >= self.capacity:
            self._space.clear()
            await self._space.wait()
        self._items.append(item)
        self._idle.clear()
        self._ready.set()

    async def take(self) -> list[T]:
        """The next batch (at most ``max_batch`` items, in arrival order); waits for one item.
        Call :meth:`done` when the batch is processed."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        if self._should_linger():
            await asyncio.sleep(self.linger_seconds)
        batch = self._items[: self.max_batch]
        self._last_batch = len(batch)
        del self._items[: len(batch)]
        if not self._items:
            self._ready.clear()
        self._in_flight += 1
        self._space.set()
        return batch

    def _should_linger(self) -> bool:
        return (
            self.linger_seconds > 0
            and self._last_batch >= self.linger_after
            and len(self._items) < self.max_batch
        )

    def done(self) -> None:
        """The batch last taken is processed (or abandoned)."""
        self._in_flight -= 1
        if self._in_flight == 0 and not self._items:
            self._idle.set()

    async def drained(self) -> None:
        """Wait until everything put was taken and processed."""
        await self._idle.wait()
