"""The worker's Kafka transport: Faust's aiokafka driver with an idempotent producer.

Faust turns on ``enable_idempotence`` only inside its exactly-once transactions, which the
worker does not use (Redis dedupes, see :mod:`streams.worker`). Without it, a produce request
that reached the broker but whose answer was lost (a leader killed, a connection cut) is sent
again and written twice, and a retried batch can land behind a later one. With it, the broker
drops the repeat by the producer's sequence numbers and keeps each partition's order.
Idempotence needs ``acks=all``, which the worker uses anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver

#: What the worker's producer adds to Faust's aiokafka settings.
PRODUCER_DURABILITY: Final = {"acks": "all", "enable_idempotence": True}


class IdempotentProducer(aiokafka_driver.Producer):
    """Faust's aiokafka producer with ``acks=all`` and ``enable_idempotence=True``."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **PRODUCER_DURABILITY}


class IdempotentTransport(aiokafka_driver.Transport):
    """Faust's aiokafka transport whose producers are :class:`IdempotentProducer`."""

    Producer = IdempotentProducer


def use_idempotent_producer(app: faust.App) -> None:
    """Make ``app``'s producer idempotent; call before the app starts (it makes the producer
    from its transport on first use)."""
    app.transport = IdempotentTransport(app.conf.broker_consumer, app)
