"""The Python Kafka client's limit: consume every play event and produce it unchanged.

Run as ``python -m devtools.bench.passthrough`` with the same ``NP_*`` settings as the worker
(topics, consumer group): it reads ``topic_play_events`` and writes each message's key and value to
``topic_recommendations``, batch by batch, with no parsing, state or ranking. Its throughput on
one core is the ceiling for any aiokafka-based worker on this machine.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer

from devtools.bench.kafka_io import kafka_client_options, producer_for
from nowplaying.settings import Settings


async def passthrough(settings: Settings, stop: asyncio.Event) -> int:
    consumer = AIOKafkaConsumer(
        settings.topic_play_events,
        **kafka_client_options(settings),
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    producer = producer_for(settings, linger_ms=0)
    await consumer.start()
    await producer.start()
    copied = 0
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for records in batches.values():
                for rec in records:
                    await producer.send(settings.topic_recommendations, rec.value, key=rec.key)
                    copied += 1
    finally:
        await producer.stop()
        await consumer.stop()
    return copied


async def _main() -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    copied = await passthrough(Settings(), stop)
    print(f"passthrough copied {copied} messages", flush=True)
    return 0


def main() -> int:
    return asyncio.run(_main())


if __name__ == "__main__":
    sys.exit(main())
