"""Integration tests: every test here talks to REAL services, never to fakes.

* Every test under ``tests/integration`` is marked ``integration`` automatically.
* Tests marked ``stress`` (a fault scenario repeated many times, ``make stress``) are opt-in:
  deselected unless the ``-m`` expression names ``stress``.
* The shared broker and Redis (``make up``) come from ``tests/conftest.py``
  (``kafka_bootstrap``, ``redis_url``, ``settings_factory``, ``unique_settings``).
* Tests that stop, kill or reconfigure a service use a PRIVATE instance from the fixtures
  below (own ports, own temporary folder), never the shared one.
* Tests that run their own worker and stop, kill or starve it build its settings with
  ``worker_settings``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from nowplaying.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
from tests.support.services import (
    KafkaBroker,
    KafkaCluster,
    RedisServer,
    private_kafka_broker,
    private_kafka_cluster,
    private_redis_server,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
    if "stress" in (config.getoption("markexpr") or ""):
        return
    dropped = [i for i in items if i.get_closest_marker("stress") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


class _Instance(Protocol):
    def start(self) -> None: ...
    def kill(self) -> None: ...


T = TypeVar("T", bound=_Instance)


def _start_many(tmp_path: Path, name: str, make: Callable[..., T]) -> Iterator[Callable[..., T]]:
    """A ``start(**kwargs)`` that builds and starts instances in ``tmp_path/<name>-<n>``;
    every instance it started is killed when the generator is closed (fixture teardown)."""
    started: list[T] = []

    def start(**kwargs: Any) -> T:
        instance = make(tmp_path / f"{name}-{len(started)}", **kwargs)
        started.append(instance)
        instance.start()
        return instance

    yield start
    for instance in started:
        instance.kill()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[Callable[..., KafkaBroker]]:
    """Start a private broker: ``private_kafka(**kw) -> KafkaBroker`` (already started).

    Keyword arguments go to :func:`tests.support.services.private_kafka_broker`
    (``scram_users``, ``extra_properties``, fixed ports). Its data lives under this test's
    ``tmp_path``, so ``broker.stop()`` / ``broker.kill()`` then ``broker.start()`` restarts
    it with the same data. Every broker it started is killed at teardown.
    """
    yield from _start_many(tmp_path, "kafka", private_kafka_broker)


@pytest.fixture
def kafka_cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """A private 3-node Kafka cluster (KRaft, every node a voter), started, on free ports, its
    data under this test's ``tmp_path``; topics default to replication factor 3 and
    ``min.insync.replicas`` 2. ``kafka_cluster.node(i).kill()`` then ``.start()`` restarts one
    node with its data. Every node is killed at teardown; request this fixture before
    ``settings_factory`` so that the topics are deleted while the cluster still runs.
    """
    cluster = private_kafka_cluster(tmp_path / "kafka-cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start a private Redis: ``private_redis(port=None) -> RedisServer`` (already started).

    ``server.stop(save=True)`` keeps its snapshot for the next ``server.start()``;
    ``stop(save=False)`` or ``wipe()`` make the restart empty. Killed at teardown.
    """
    yield from _start_many(tmp_path, "redis", private_redis_server)


@pytest.fixture
def worker_settings(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int]
) -> Callable[..., Settings]:
    """``worker_settings(**fields) -> Settings`` (through ``settings_factory``) for a worker
    that a test stops, kills or cuts off: the shared small model, a free metrics port, a 6 s
    consumer-group session timeout (a dead member's partitions move on soon) and retries
    capped at 1 s. ``fields`` override these or set others."""

    def make(**fields: Any) -> Settings:
        defaults: dict[str, Any] = {
            "model_dir": shared_small_model(),
            "worker_metrics_port": free_tcp_port(),
            "worker_session_timeout_seconds": 6.0,
            "retry_max_seconds": 1.0,
        }
        return settings_factory(**(defaults | fields))

    return make
