"""Micro-batching without a timer: what arrived while the last batch was processed."""

from __future__ import annotations

import asyncio

import pytest

from streams.batching import Batcher


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


def test_it_lingers_only_after_a_big_batch() -> None:
    async def scenario() -> list[list[int]]:
        batcher: Batcher[int] = Batcher(max_batch=100, linger_seconds=0.05, linger_after=3)
        out: list[list[int]] = []

        async def take() -> None:
            out.append(await batcher.take())
            batcher.done()

        await batcher.put(0)
        await take()  # [0]: small, so the next take does not linger
        await batcher.put(1)
        taking = asyncio.ensure_future(take())
        await asyncio.sleep(0)
        await batcher.put(2)  # arrives after the take: not in its batch
        await taking
        await batcher.put(3)
        await batcher.put(4)
        await take()  # [2, 3, 4]: big
        await batcher.put(5)
        taking = asyncio.ensure_future(take())  # lingers: 6 arrives in time
        await asyncio.sleep(0.01)
        await batcher.put(6)
        await taking
        return out

    assert asyncio.run(scenario()) == [[0], [1], [2, 3, 4], [5, 6]]


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
