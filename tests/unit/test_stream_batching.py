"""Micro-batching without a timer: what arrived while the last batch was processed."""

from __future__ import annotations

import asyncio

import pytest

from streams.batching import Backlog, Batcher


def test_an_idle_loop_takes_an_event_at_once_then_what_queued_meanwhile() -> None:
    async def scenario() -> list[list[int]]:
        batcher: Batcher[int] = Batcher(max_batch=10)
        taken: list[list[int]] = []
        release = asyncio.Event()

        async def loop() -> None:
            while True:
                batch = await batcher.take()
                taken.append(batch)
                if len(taken) == 1:
                    await release.wait()  # processing the first batch takes a while
                batcher.done()

        task = asyncio.ensure_future(loop())
        await batcher.put(1)
        await asyncio.sleep(0)
        for i in range(2, 6):  # arrive while batch [1] is processed
            await batcher.put(i)
        release.set()
        await batcher.drained()
        task.cancel()
        return taken

    assert asyncio.run(scenario()) == [[1], [2, 3, 4, 5]]


def test_batches_are_capped_and_keep_arrival_order() -> None:
    async def scenario() -> list[list[int]]:
        batcher: Batcher[int] = Batcher(max_batch=3, capacity=8)
        for i in range(7):
            await batcher.put(i)
        out = []
        while len(batcher):
            out.append(await batcher.take())
            batcher.done()
        return out

    assert asyncio.run(scenario()) == [[0, 1, 2], [3, 4, 5], [6]]


def test_put_waits_while_the_buffer_is_full() -> None:
    async def scenario() -> tuple[bool, bool]:
        batcher: Batcher[int] = Batcher(max_batch=2, capacity=2)
        await batcher.put(1)
        await batcher.put(2)
        third = asyncio.ensure_future(batcher.put(3))
        await asyncio.sleep(0.01)
        blocked = not third.done()
        await batcher.take()
        await asyncio.sleep(0)
        return blocked, third.done()

    assert asyncio.run(scenario()) == (True, True)


class Consumer:
    """High watermarks as Faust's consumer reports them, set by the test."""

    def __init__(self) -> None:
        self.highwaters: dict[int, int | None] = {}

    def highwater(self, partition: int) -> int | None:
        if partition not in self.highwaters:
            raise AssertionError("Partition is not assigned")  # as aiokafka does
        return self.highwaters[partition]


def lingering(consumer: Consumer, *, linger: float = 5.0, max_batch: int = 100) -> Batcher[int]:
    return Batcher(max_batch=max_batch, linger_seconds=linger, backlog=Backlog(consumer.highwater))


async def put(batcher: Batcher[int], partition: int, offset: int) -> None:
    assert batcher.backlog is not None
    batcher.backlog.note(partition, offset)
    await batcher.put(offset)


def test_a_worker_that_keeps_up_never_lingers() -> None:
    async def scenario() -> list[int]:
        consumer = Consumer()
        consumer.highwaters = {0: 3, 1: None}  # 0: offsets 0-2 fetched; 1: never fetched
        batcher = lingering(consumer)
        for offset in range(3):
            await put(batcher, 0, offset)
        await put(batcher, 1, 7)
        return await asyncio.wait_for(batcher.take(), 1)  # 5 s of lingering would time out

    assert asyncio.run(scenario()) == [0, 1, 2, 7]


def test_behind_it_lingers_until_the_fetched_records_are_buffered() -> None:
    async def scenario() -> tuple[bool, list[int]]:
        consumer = Consumer()
        consumer.highwaters = {0: 5}  # offsets 0-4 fetched, two reached the buffer so far
        batcher = lingering(consumer)
        await put(batcher, 0, 0)
        await put(batcher, 0, 1)
        taking = asyncio.ensure_future(batcher.take())
        await asyncio.sleep(0.01)
        waited = not taking.done()
        for offset in (2, 3, 4):
            await put(batcher, 0, offset)
        return waited, await asyncio.wait_for(taking, 1)

    assert asyncio.run(scenario()) == (True, [0, 1, 2, 3, 4])


def test_lingering_ends_with_a_full_batch_or_after_the_linger_time() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        consumer = Consumer()
        consumer.highwaters = {0: 1000}
        batcher = lingering(consumer, linger=0.05, max_batch=3)
        await put(batcher, 0, 0)
        taking = asyncio.ensure_future(batcher.take())
        await asyncio.sleep(0)
        await put(batcher, 0, 1)
        await put(batcher, 0, 2)  # full: no need to wait for the rest
        full = await asyncio.wait_for(taking, 1)
        batcher.done()
        await put(batcher, 0, 3)
        return full, await batcher.take()  # the rest never comes: 50 ms, then what is there

    assert asyncio.run(scenario()) == ([0, 1, 2], [3])


def test_a_partition_revoked_while_behind_does_not_keep_it_lingering() -> None:
    async def scenario() -> list[int]:
        consumer = Consumer()
        consumer.highwaters = {0: 10, 1: 4}
        batcher = lingering(consumer)
        await put(batcher, 0, 3)  # partition 0 is behind ...
        await put(batcher, 1, 3)
        del consumer.highwaters[0]  # ... and revoked before the take
        return await asyncio.wait_for(batcher.take(), 1)

    assert asyncio.run(scenario()) == [3, 3]


def test_without_a_backlog_or_a_linger_time_it_never_waits() -> None:
    async def scenario() -> list[list[int]]:
        consumer = Consumer()
        consumer.highwaters = {0: 1000}
        out = []
        for batcher in (
            Batcher[int](max_batch=10, linger_seconds=5.0),
            lingering(consumer, linger=0.0),
        ):
            if batcher.backlog is None:
                await batcher.put(1)
            else:
                await put(batcher, 0, 1)
            out.append(await asyncio.wait_for(batcher.take(), 1))
        return out

    assert asyncio.run(scenario()) == [[1], [1]]


def test_drained_waits_for_the_batch_in_flight() -> None:
    async def scenario() -> bool:
        batcher: Batcher[int] = Batcher(max_batch=5)
        await batcher.put(1)
        await batcher.take()
        waiting = asyncio.ensure_future(batcher.drained())
        await asyncio.sleep(0.01)
        still_waiting = not waiting.done()
        batcher.done()
        await asyncio.wait_for(waiting, 1)
        return still_waiting

    assert asyncio.run(scenario())


@pytest.mark.parametrize(("max_batch", "capacity"), [(0, None), (5, 4)])
def test_bad_sizes_are_refused(max_batch: int, capacity: int | None) -> None:
    with pytest.raises(ValueError):
        Batcher(max_batch, capacity=capacity)
