"""Every producer of nowplaying is durable: acks=all (a record counts once min.insync.replicas
brokers have it) and idempotent (a retried send is written once and cannot reorder a
partition). Checked on the options each client is built with; the on-disk producer ids are
checked on a real cluster by tests/integration/test_cluster_kafka.py."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka
import faust
import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver

from nowplaying.clients import kafka_producer
from streams.faust_kafka import IdempotentProducer, use_worker_transport
from tests.support.settings import isolated_settings


def test_the_kafka_python_producer_is_idempotent_with_acks_all() -> None:
    settings = isolated_settings(kafka_bootstrap_servers="127.0.0.1:1")
    producer = kafka_producer(settings, api_version=(3, 9))  # no version probe, no broker
    try:
        assert producer.config["acks"] == -1  # "all"
        assert producer.config["enable_idempotence"] is True
        assert producer.config["max_in_flight_requests_per_connection"] <= 5
    finally:
        producer.close(timeout=1)


class Recorder:
    """Stands for aiokafka's producer class: records the options Faust builds it with."""

    options: dict[str, Any] = {}

    def __init__(self, **options: Any) -> None:
        Recorder.options = options


def faust_producer_options(monkeypatch: pytest.MonkeyPatch, *, idempotent: bool) -> dict[str, Any]:
    """The options the app's producer hands to aiokafka when it starts."""
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", Recorder)

    async def build() -> dict[str, Any]:
        app = faust.App("t-producer", broker="kafka://127.0.0.1:1", producer_acks=-1)
        if idempotent:
            use_worker_transport(app)
        assert isinstance(app.producer, aiokafka_driver.Producer)
        app.producer._new_producer()
        return dict(Recorder.options)

    return asyncio.run(build())


def test_the_workers_faust_producer_is_idempotent_with_acks_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = faust_producer_options(monkeypatch, idempotent=True)
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True
    assert options["bootstrap_servers"] == ["127.0.0.1:1"]


def test_faust_alone_would_not_be_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the worker installs its own transport: outside transactions Faust leaves it off."""
    assert "enable_idempotence" not in faust_producer_options(monkeypatch, idempotent=False)


def test_the_idempotent_transport_makes_the_apps_producer() -> None:
    async def producer_type() -> type:
        app = faust.App("t-producer-type", broker="kafka://127.0.0.1:1")
        use_worker_transport(app)
        return type(app.producer)

    assert asyncio.run(producer_type()) is IdempotentProducer
