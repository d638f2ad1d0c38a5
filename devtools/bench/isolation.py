"""Each benchmark run on its own names: topics, consumer group, Redis key prefix and ports.

Runs never mix with each other or with anyone else's tests on the same broker and Redis; what
a run creates is deleted after it. A process under test gets its settings as ``NP_*`` variables.
"""

from __future__ import annotations

import contextlib
import socket
import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.bench.kafka_io import kafka_client_options
from nowplaying.clients import redis_client
from nowplaying.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_settings(settings: Settings, name: str) -> Settings:
    """The same settings with this run's own topics, group, Redis prefix and ports."""
    run = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={
            "topic_play_events": f"{run}-play",
            "topic_recommendations": f"{run}-recs",
            "topic_dead_letters": f"{run}-dlq",
            "topic_outcomes": f"{run}-outcomes",
            "consumer_group": f"{run}-group",
            "redis_key_prefix": run,
            "worker_metrics_port": free_port(),
            "worker_web_port": free_port(),
        }
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """NP_* variables for a child process, for the fields this harness changes or resolves."""
    fields = {
        "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        "topic_play_events": settings.topic_play_events,
        "topic_recommendations": settings.topic_recommendations,
        "topic_dead_letters": settings.topic_dead_letters,
        "topic_outcomes": settings.topic_outcomes,
        "consumer_group": settings.consumer_group,
        "redis_url": settings.redis_url,
        "redis_key_prefix": settings.redis_key_prefix,
        "worker_metrics_port": str(settings.worker_metrics_port),
        "worker_web_port": str(settings.worker_web_port),
        "model_dir": str(settings.model_dir.resolve()),
        "data_dir": str(settings.data_dir.resolve()),
        "candidates": str(settings.candidates),
        "top_k": str(settings.top_k),
        "batch_max_events": str(settings.batch_max_events),
        "batch_within_seconds": str(settings.batch_within_seconds),
        "ort_intra_op_threads": str(settings.ort_intra_op_threads),
        "session_cache_sessions": str(settings.session_cache_sessions),
        "log_level": "WARNING",
    }
    if settings.model_version:
        fields["model_version"] = settings.model_version
    return {f"NP_{k.upper()}": v for k, v in fields.items()}


def run_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_play_events,
        settings.topic_recommendations,
        settings.topic_dead_letters,
        settings.topic_outcomes,
    ]


async def create_topics(settings: Settings) -> None:
    """This run's topics, with the project's partition count."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)
                for name in run_topics(settings)
            ]
        )
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> None:
    """Best effort: a clean-up problem must not hide the run's results."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(run_topics(settings))
    finally:
        await admin.close()


def delete_redis_keys(settings: Settings) -> int:
    client = redis_client(settings)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted
