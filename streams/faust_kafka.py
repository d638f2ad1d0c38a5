"""The worker's Kafka transport: Faust's aiokafka driver with an idempotent producer and a
consumer that hands a message to the streams without starting tasks for it.

Faust turns on ``enable_idempotence`` only inside its exactly-once transactions, which the
worker does not use (Redis dedupes, see :mod:`streams.worker`). Without it, a produce request
that reached the broker but whose answer was lost (a leader killed, a connection cut) is sent
again and written twice, and a retried batch can land behind a later one. With it, the broker
drops the repeat by the producer's sequence numbers and keeps each partition's order.
Idempotence needs ``acks=all``, which the worker uses anyway.

Faust's consumer delivers every fetched message with ``Service.wait_first(callback(message),
suspend_flow.wait())``: four tasks (the callback, the flow event and the service's own stopped
and crashed events), an ``asyncio.wait`` and three cancellations per message, measured at 23 µs
of CPU per message on uvloop (32 µs on asyncio's loop), about as much as the worker's whole
validation and Redis client work per event at full batches. The callback (handing the message
to the topic's channels) almost never blocks: it only waits when a stream buffer is full or the
flow is suspended for a rebalance. :class:`EagerConsumer` runs it to its first suspension
in place; only when it does suspend is the rest handed to Faust's ``wait_first`` as before, so
a rebalance still interrupts a blocked delivery exactly as in Faust.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator, Mapping
from typing import Any, Final

import faust
from faust.sensors import Monitor
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, EventT, StreamT
from faust.types.tuples import Message
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

#: What the worker's producer adds to Faust's aiokafka settings.
PRODUCER_DURABILITY: Final = {"acks": "all", "enable_idempotence": True}


class IdempotentProducer(aiokafka_driver.Producer):
    """Faust's aiokafka producer with ``acks=all`` and ``enable_idempotence=True``."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **PRODUCER_DURABILITY}


class _Resumed:
    """The rest of a coroutine that was run in place up to its first suspension: awaiting this
    yields what it suspended on and goes on driving it, as the task running it would have."""

    def __init__(self, coro: Coroutine[Any, Any, Any], suspended_on: Any) -> None:
        self._coro = coro
        self._suspended_on = suspended_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._suspended_on
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # cancellation included: the coroutine handles it
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


async def _rest_of(resumed: _Resumed) -> Any:
    return await resumed


class EagerConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer whose ``wait_first`` runs its first coroutine in place first
    (see the module docstring); anything else goes to Faust's ``wait_first`` unchanged."""

    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:
        if timeout is not None:
            return await super().wait_first(*coros, timeout=timeout)
        first = coros[0] if coros else None
        if not asyncio.iscoroutine(first):
            return await super().wait_first(*coros)
        try:
            suspended_on = first.send(None)
        except StopIteration as done:
            _close(coros[1:])
            if self._stopped.is_set() or self._crashed.is_set():
                return WaitResults([], [], True)
            return WaitResults([first], [done.value], False)
        except BaseException:
            _close(coros[1:])
            raise
        rest = _rest_of(_Resumed(first, suspended_on))
        return await super().wait_first(rest, *coros[1:])


def _close(coros: tuple[WaitArgT, ...]) -> None:
    """Close the coroutines that will not be awaited now (no "never awaited" warning)."""
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()


class WorkerTransport(aiokafka_driver.Transport):
    """Faust's aiokafka transport with :class:`IdempotentProducer` and :class:`EagerConsumer`."""

    Producer = IdempotentProducer
    Consumer = EagerConsumer


class QuietMonitor(Monitor):
    """Faust's monitor without its per-message and per-event statistics.

    Faust's app always runs a :class:`faust.sensors.Monitor` as a sensor; for every message and
    every stream event it counts by topic, stream and task, stringifies look-up keys, reads the
    clock four times and keeps a history of event run times, for Faust's own web statistics,
    which the worker switches off (``web_stats_enabled=False``; its figures are the Prometheus
    metrics of :mod:`nowplaying.metrics`). This monitor skips those four hooks; the rest (the
    offsets Faust's consumer reports, commits, rebalances, sends) is Faust's as before. Given to
    the app through its ``monitor`` argument."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT[Any],
        event: EventT[Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass


def use_worker_transport(app: faust.App) -> None:
    """Give ``app`` the worker's transport; call before the app starts (it makes the producer
    and the consumer from its transport on first use)."""
    app.transport = WorkerTransport(app.conf.broker_consumer, app)
