"""Contract tests: one suite, every back-end of a seam held to it.

The ``on_backend`` fixture runs each test once per feature-store back-end
(:data:`tests.support.store_backends.BACKENDS`). The Redis back-ends' runs are marked
``integration``: they talk to the real shared Redis and to a real 3-master Redis Cluster (started
once per test session, on free loopback ports), and fail, never skip, when those are missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

import pytest

from nowplaying.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.cluster import RedisClusterProcesses, free_cluster_ports
from tests.support.settings import isolated_settings
from tests.support.store_backends import BACKENDS, Backend, BackendName, run_on_backend

T = TypeVar("T")


class OnBackend(Protocol):
    """``on_backend(body, **settings_overrides)``: run ``body`` on this test's back-end."""

    name: BackendName

    def __call__(self, body: Callable[[Backend], Awaitable[T]], **overrides: Any) -> T: ...


class _Runner:
    def __init__(self, name: BackendName, make_settings: Callable[..., Settings]) -> None:
        self.name = name
        self._make_settings = make_settings

    def __call__(self, body: Callable[[Backend], Awaitable[T]], **overrides: Any) -> T:
        return run_on_backend(self.name, self._make_settings(**overrides), body)


@pytest.fixture(scope="session")
def contract_redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterProcesses]:
    """A real 3-master Redis Cluster for this test session (its nodes stop at the end)."""
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("cluster"), free_cluster_ports(3))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(
    params=[
        pytest.param(name, id=name, marks=() if name == "memory" else pytest.mark.integration)
        for name in BACKENDS
    ]
)
def on_backend(request: pytest.FixtureRequest, settings_factory: SettingsFactory) -> OnBackend:
    name: BackendName = request.param
    if name == "memory":
        return _Runner(
            name, lambda **o: isolated_settings(redis_key_prefix=f"m-{uuid.uuid4().hex[:8]}", **o)
        )
    if name == "redis-single":
        return _Runner(name, lambda **o: settings_factory(create_topics=False, **o))
    cluster: RedisClusterProcesses = request.getfixturevalue("contract_redis_cluster")
    return _Runner(
        name,
        lambda **o: settings_factory(
            create_topics=False, redis_url=cluster.url, redis_cluster=True, **o
        ),
    )
