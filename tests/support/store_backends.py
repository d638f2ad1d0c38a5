"""The feature-store back-ends the contract suite runs on, behind one test-side interface.

:class:`Backend` is what a contract test sees of a back-end: the store under test, a reader of
the same data, another worker's store on the same data, the TTL of a key and a way to let time
pass. :data:`BACKENDS` names them (``memory``: :class:`tests.support.fakes.MemoryStore`;
``redis-single``: the single-server back-end on the shared Redis; ``redis-cluster``: the
cluster back-end on a real 3-master Redis Cluster); :func:`run_on_backend` runs a test body on
one of them (the Redis ones as the worker opens them: :func:`features.store.feature_store_for`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, Literal, Protocol, TypeVar

from features.store import FeatureReader, FeatureStore, RedisFeatureReader, feature_store_for
from nowplaying.clients import AsyncRedisClient, async_redis_client
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from tests.support.fakes import MemoryStore

T = TypeVar("T")
BackendName = Literal["memory", "redis-single", "redis-cluster"]
BACKENDS: Final[tuple[BackendName, ...]] = ("memory", "redis-single", "redis-cluster")


class Backend(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def keys(self) -> Keys: ...

    @property
    def store(self) -> FeatureStore: ...

    @property
    def reader(self) -> FeatureReader: ...

    def another_worker(self) -> FeatureStore:
        """A second worker's store on the same data (its own memory of sessions)."""
        ...

    async def ttl(self, key: str) -> int:
        """Redis's TTL: seconds left, -1 when the key never expires, -2 when it is missing."""
        ...

    async def age(self, seconds: float) -> None:
        """Let ``seconds`` pass for every key that expires (keys left with none are gone)."""
        ...


class MemoryBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.redis_key_prefix)
        self._now = 0.0
        self._store = MemoryStore(
            keys=self.keys,
            ttl_seconds=settings.session_ttl_seconds,
            max_events=settings.max_session_events,
            clock=lambda: self._now,
        )
        self.store: FeatureStore = self._store
        self.reader: FeatureReader = self._store

    def another_worker(self) -> FeatureStore:
        return self._store.sibling()

    async def ttl(self, key: str) -> int:
        return self._store.data.ttl(key)

    async def age(self, seconds: float) -> None:
        self._now += seconds


class RedisBackend:
    """A Redis back-end as the worker opens it (``settings.redis_cluster`` picks which)."""

    def __init__(self, settings: Settings, redis: AsyncRedisClient) -> None:
        self.settings = settings
        self.keys = Keys(settings.redis_key_prefix)
        self._redis = redis
        self._store = feature_store_for(settings, redis)
        self.store: FeatureStore = self._store
        self.reader: FeatureReader = RedisFeatureReader(redis, self.keys)

    async def load_scripts(self) -> None:
        await self._store.load_scripts()

    def another_worker(self) -> FeatureStore:
        return feature_store_for(self.settings, self._redis)

    async def ttl(self, key: str) -> int:
        return await self._redis.ttl(key)

    async def age(self, seconds: float) -> None:
        """Every key of this test's prefix (on every node) loses ``seconds`` of its TTL."""
        async for key in self._redis.scan_iter(match=f"{self.keys.prefix}:*", count=1000):
            left_ms = await self._redis.pttl(key)
            if left_ms < 0:  # no TTL, or gone meanwhile
                continue
            left_ms -= int(seconds * 1000)
            if left_ms > 0:
                await self._redis.pexpire(key, left_ms)
            else:
                await self._redis.delete(key)


def run_on_backend(
    name: BackendName, settings: Settings, body: Callable[[Backend], Awaitable[T]]
) -> T:
    """Open back-end ``name`` for ``settings`` (for Redis: a client of ``settings.redis_url``,
    the scripts loaded), run ``body`` on it, close it, and return what ``body`` returned."""

    async def main() -> T:
        if name == "memory":
            return await body(MemoryBackend(settings))
        redis = async_redis_client(settings)
        try:
            backend = RedisBackend(settings, redis)
            await backend.load_scripts()
            return await body(backend)
        finally:
            await redis.aclose()

    return asyncio.run(main())
