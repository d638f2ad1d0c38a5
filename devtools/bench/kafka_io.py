"""Kafka I/O of the harness: a fixed-rate producer that records each event's produce time, and a
reader that collects the answers (recommendations, or passthrough copies) with their timestamps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools.bench.latency import Answer, answered_event_id
from devtools.bench.workload import Prepared
from nowplaying.clients import aiokafka_security_kwargs
from nowplaying.settings import Settings


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.kafka_servers, **aiokafka_security_kwargs(settings)}


def producer_for(settings: Settings, **extra: Any) -> AIOKafkaProducer:
    """An aiokafka producer as durable as the worker's: acks=all, idempotent (``extra`` adds to
    or overrides that)."""
    options: dict[str, Any] = {"acks": "all", "enable_idempotence": True, **extra}
    return AIOKafkaProducer(**kafka_client_options(settings), **options)


@dataclass
class Produced:
    sent_ms: dict[str, int] = field(default_factory=dict)
    starts: int = 0
    first_ms: int = 0
    last_ms: int = 0

    @property
    def count(self) -> int:
        return len(self.sent_ms)


async def produce_at_rate(
    producer: AIOKafkaProducer,
    topic: str,
    events: Sequence[Prepared],
    rate: float | None,
    tick_s: float = 0.001,
) -> Produced:
    """Send ``events`` at ``rate`` events/s (None: as fast as the client goes), each stamped with
    its send time as the Kafka message timestamp. Returns the send times by event id."""
    out = Produced()
    loop = asyncio.get_running_loop()
    start = loop.time()
    out.first_ms = now_ms()
    i = 0
    n = len(events)
    while i < n:
        due = n if rate is None else min(n, int((loop.time() - start) * rate) + 1)
        while i < due:
            ev = events[i]
            ts = now_ms()
            await producer.send(topic, ev.value, key=ev.key, timestamp_ms=ts)
            out.sent_ms[ev.event_id] = ts
            out.starts += ev.is_start
            i += 1
            if rate is None and i % 1000 == 0:
                await asyncio.sleep(0)  # let the client's sender run
        if rate is not None and i < n:
            next_due = start + i / rate
            await asyncio.sleep(max(0.0, min(tick_s, next_due - loop.time())))
    await producer.flush()
    out.last_ms = now_ms()
    return out


class AnswerReader:
    """Reads every partition of the output topic from the beginning, without a consumer group."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.answers: list[Answer] = []
        self._consumer = AIOKafkaConsumer(
            **kafka_client_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )

    async def start(self) -> None:
        # Without a group, aiokafka assigns every partition of the subscribed topic; the topic is
        # new, so "earliest" misses nothing produced before the assignment.
        self._consumer.subscribe([self.topic])
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 100) -> int:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        got = 0
        for records in batches.values():
            for rec in records:
                event_id = answered_event_id(rec.value) if rec.value is not None else None
                if event_id is not None:
                    self.answers.append(Answer(event_id, rec.timestamp))
                    got += 1
        return got

    async def collect_until(
        self,
        wanted: set[str],
        timeout_s: float,
        idle_s: float = 5.0,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        """Poll until every wanted event id has an answer, ``timeout_s`` passes, nothing new
        arrives for ``idle_s``, or ``alive()`` says the answering process has gone."""
        answered = {a.event_id for a in self.answers} & wanted
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last_progress = loop.time()
        while len(answered) < len(wanted) and loop.time() < deadline:
            before = len(self.answers)
            await self.poll()
            if len(self.answers) > before:
                answered.update(a.event_id for a in self.answers[before:] if a.event_id in wanted)
                last_progress = loop.time()
            elif loop.time() - last_progress > idle_s or not alive():
                break
