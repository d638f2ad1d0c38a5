"""The worker's Faust consumer delivers a message in place when the delivery does not block,
and as Faust does (racing the flow's suspension) when it does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
import pytest

from streams.faust_kafka import EagerConsumer, use_worker_transport

T = TypeVar("T")


def with_consumer(scenario: Callable[[EagerConsumer], Awaitable[T]]) -> T:
    async def run() -> T:
        app = faust.App("t-eager-consumer", broker="kafka://127.0.0.1:1")
        use_worker_transport(app)
        consumer = app.consumer
        assert isinstance(consumer, EagerConsumer)
        return await scenario(consumer)

    return asyncio.run(run())


def test_a_delivery_that_does_not_block_runs_in_place_without_tasks() -> None:
    async def scenario(consumer: EagerConsumer) -> tuple[list[object], bool, int]:
        delivered: list[str] = []

        async def deliver(message: str) -> str:
            delivered.append(message)
            return "done"

        flow = asyncio.Event()
        waiting = flow.wait()
        tasks_before = len(asyncio.all_tasks())
        results = await consumer.wait_first(deliver("m1"), waiting)
        tasks_started = len(asyncio.all_tasks()) - tasks_before
        assert delivered == ["m1"]
        return results.results, results.stopped, tasks_started

    results, stopped, tasks = with_consumer(scenario)
    assert (results, stopped, tasks) == (["done"], False, 0)


def test_a_blocked_delivery_completes_once_unblocked() -> None:
    async def scenario(consumer: EagerConsumer) -> list[object]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        queue.put_nowait("full")

        async def deliver(message: str) -> str:
            await queue.put(message)  # blocks: the buffer is full
            return f"put {message}"

        async def drain_later() -> None:
            await asyncio.sleep(0.01)
            queue.get_nowait()

        draining = asyncio.ensure_future(drain_later())
        results = await consumer.wait_first(deliver("m2"), asyncio.Event().wait())
        await draining
        assert list(queue._queue) == ["m2"]  # type: ignore[attr-defined]
        return results.results

    assert with_consumer(scenario) == ["put m2"]


def test_a_suspended_flow_interrupts_a_blocked_delivery_as_in_faust() -> None:
    async def scenario(consumer: EagerConsumer) -> tuple[bool, bool]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        queue.put_nowait("full")
        cancelled = asyncio.Event()

        async def deliver(message: str) -> None:
            try:
                await queue.put(message)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        suspend = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, suspend.set)
        results = await consumer.wait_first(deliver("m3"), suspend.wait())
        await asyncio.sleep(0)  # the cancelled delivery runs its handler
        return results.results == [True], cancelled.is_set()

    assert with_consumer(scenario) == (True, True)


def test_an_error_in_the_delivery_propagates() -> None:
    async def scenario(consumer: EagerConsumer) -> None:
        async def deliver() -> None:
            raise KeyError("bad")

        await consumer.wait_first(deliver(), asyncio.Event().wait())

    with pytest.raises(KeyError):
        with_consumer(scenario)
