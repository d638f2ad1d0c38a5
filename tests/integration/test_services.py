"""The foundation against the REAL services: topics, a Kafka round trip, Redis, and the
private-instance helpers that fault tests use (stop/kill and restart with or without data)."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec

from devtools.services.cli import main as services_main
from nowplaying.clients import (
    async_redis_client,
    kafka_admin,
    kafka_producer,
    kafka_python_security_kwargs,
    redis_client,
)
from nowplaying.settings import Settings
from streams.topics import ensure_topics, topic_specs
from streams.topics import run as topics_run
from tests.conftest import SettingsFactory
from tests.support.services import KafkaBroker, RedisServer
from tests.support.settings import isolated_settings


def _consume_all(settings: Settings, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_servers,
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
        **kafka_python_security_kwargs(settings),
    )
    got: list[tuple[bytes, bytes]] = []
    try:
        for message in consumer:
            got.append((message.key, message.value))
            if len(got) >= expected:
                break
    finally:
        consumer.close()
    return got


def test_topics_are_created_with_partitions_and_retention(unique_settings: Settings) -> None:
    admin = kafka_admin(unique_settings)
    try:
        described = {
            t["name"]: t for t in admin.describe_topics(list(topic_specs(unique_settings)))
        }
    finally:
        admin.close()
    for name in (
        unique_settings.topic_play_events,
        unique_settings.topic_recommendations,
        unique_settings.topic_dead_letters,
        unique_settings.topic_outcomes,
    ):
        assert described[name]["error_code"] == 0
        assert len(described[name]["partitions"]) == unique_settings.topic_partitions


def test_ensure_topics_is_idempotent(unique_settings: Settings) -> None:
    again = ensure_topics(unique_settings)
    assert [s.name for s in again] == list(topic_specs(unique_settings))
    assert all(s.ok and not s.created for s in again)
    assert all(s.partitions == unique_settings.topic_partitions for s in again)


def test_ensure_topics_reports_a_partition_mismatch(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    wider = settings.model_copy(update={"topic_partitions": settings.topic_partitions + 1})
    statuses = ensure_topics(wider)
    assert all(not s.ok and "partitions" in (s.error or "") for s in statuses)


def test_topics_command_creates_then_finds(
    settings_factory: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_factory(create_topics=False)
    try:
        assert topics_run(settings, argparse.Namespace()) == 0
        first = capsys.readouterr().out
        assert topics_run(settings, argparse.Namespace()) == 0
        second = capsys.readouterr().out
    finally:
        admin = kafka_admin(settings)
        admin.delete_topics(list(topic_specs(settings)), raise_errors=False)
        admin.close()
    assert first.count("created") == 4
    assert second.count("exists") == 4


def test_produce_and_consume_round_trip(unique_settings: Settings) -> None:
    topic = unique_settings.topic_play_events
    sent = [(f"u-{i % 3}".encode(), f'{{"n": {i}}}'.encode()) for i in range(20)]
    producer = kafka_producer(unique_settings)
    try:
        for key, value in sent:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()
    got = _consume_all(unique_settings, topic, len(sent))
    assert sorted(got) == sorted(sent)
    # Same key, same partition, so per-key order is kept.
    for key in {k for k, _ in sent}:
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key]


def test_redis_read_write(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(create_topics=False)
    key = f"{settings.redis_key_prefix}:probe"
    client = redis_client(settings, decode_responses=True)
    try:
        assert client.set(key, "hello", ex=60)
        assert client.get(key) == "hello"
        assert 0 < client.ttl(key) <= 60
        client.rpush(f"{key}:list", "a", "b")
        assert client.lrange(f"{key}:list", 0, -1) == ["a", "b"]
    finally:
        client.close()


def test_async_redis_client_reads_what_the_sync_one_wrote(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(create_topics=False)
    key = f"{settings.redis_key_prefix}:async"
    sync = redis_client(settings)
    sync.set(key, b"\x00bytes")
    sync.close()

    async def read() -> object:
        client = async_redis_client(settings)
        try:
            return await client.get(key)
        finally:
            await client.aclose()

    assert asyncio.run(read()) == b"\x00bytes"


def test_settings_factory_keeps_tests_apart(settings_factory: SettingsFactory) -> None:
    a = settings_factory(create_topics=False)
    b = settings_factory(create_topics=False, top_k=3)
    assert a.topic_play_events != b.topic_play_events
    assert a.consumer_group != b.consumer_group
    assert a.redis_key_prefix != b.redis_key_prefix
    assert b.top_k == 3


def test_services_status_sees_the_shared_services() -> None:
    assert services_main(["status"]) == 0


@pytest.mark.slow
def test_private_broker_restarts_with_its_data_after_a_crash(
    private_kafka: Callable[..., KafkaBroker],
) -> None:
    broker = private_kafka()
    settings = isolated_settings(
        kafka_bootstrap_servers=broker.bootstrap,
        topic_play_events="restart-play",
        topic_recommendations="restart-recs",
        topic_dead_letters="restart-dlq",
        topic_partitions=1,
        consumer_group=f"g-{uuid.uuid4().hex[:8]}",
    )
    assert all(s.created for s in ensure_topics(settings))
    producer = kafka_producer(settings)
    producer.send("restart-play", key=b"k", value=b"before-stop").get(timeout=30)
    producer.close()

    # A crash (the graceful stop() path is exercised by the Kafka fault tests), then a start
    # on the same folder: formatted already, same topics, the acknowledged message kept.
    broker.kill()
    assert not broker.is_running()
    broker.start()
    assert all(s.ok and not s.created for s in ensure_topics(settings))
    got = _consume_all(settings, "restart-play", 1)
    assert got == [(b"k", b"before-stop")]
    admin = kafka_admin(settings)
    try:
        offsets = admin.list_partition_offsets(
            {TopicPartition("restart-play", 0): OffsetSpec.LATEST}
        )
    finally:
        admin.close()
    assert [o.offset for o in offsets.values()] == [1]


def test_private_redis_restarts_with_or_without_its_data(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis()
    client = redis_client(isolated_settings(redis_url=server.url))
    client.set("kept", b"1")
    client.close()

    server.stop(save=True)
    assert not server.is_running()
    server.start()
    client = redis_client(isolated_settings(redis_url=server.url))
    assert client.get("kept") == b"1"
    client.close()

    server.stop(save=False)
    server.wipe()
    server.start()
    client = redis_client(isolated_settings(redis_url=server.url))
    assert client.get("kept") is None
    client.close()
