"""Integration tests: every test here talks to REAL services, never to fakes.

* Every test under ``tests/integration`` is marked ``integration`` automatically.
* Tests marked ``stress`` (a fault scenario repeated many times, ``make stress``) are opt-in:
  deselected unless the ``-m`` expression names ``stress``.
* The shared broker and Redis (``make up``) come from ``tests/conftest.py``
  (``kafka_bootstrap``, ``redis_url``, ``settings_factory``, ``unique_settings``).
* Tests that stop, kill or reconfigure a service use a PRIVATE instance from the fixtures
  below (own ports, own temporary folder), never the shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from tests.support.services import (
    KafkaBroker,
    RedisServer,
    private_kafka_broker,
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
def private_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start a private Redis: ``private_redis(port=None) -> RedisServer`` (already started).

    ``server.stop(save=True)`` keeps its snapshot for the next ``server.start()``;
    ``stop(save=False)`` or ``wipe()`` make the restart empty. Killed at teardown.
    """
    yield from _start_many(tmp_path, "redis", private_redis_server)
