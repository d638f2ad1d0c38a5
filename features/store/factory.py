"""Which feature-store back-end a process uses: picked by ``settings.redis_cluster``."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from features.session_cache import SessionCache
from features.store.redis_cluster import RedisClusterStore
from features.store.redis_single import RedisSingleStore
from nowplaying.clients import AsyncRedisClient
from nowplaying.keys import Keys
from nowplaying.settings import Settings


def feature_store_for(
    settings: Settings, redis: AsyncRedisClient, cache: SessionCache | None = None
) -> RedisSingleStore | RedisClusterStore:
    """The back-end for ``settings`` on ``redis`` (the client of
    :func:`nowplaying.clients.async_redis_client` for the same settings): per-event and
    per-session script calls on a Redis Cluster, one script call per batch on a single server.
    Raises ``ValueError`` when the client does not match ``settings.redis_cluster``."""
    keys = Keys(settings.redis_key_prefix)
    ttl, max_events = settings.session_ttl_seconds, settings.max_session_events
    if settings.redis_cluster:
        if not isinstance(redis, RedisCluster):
            raise ValueError("redis_cluster is set: the store needs a RedisCluster client")
        return RedisClusterStore(redis, keys, ttl, max_events, cache)
    if isinstance(redis, RedisCluster):
        raise ValueError(
            "a RedisCluster client needs redis_cluster=true (batch scripts need one server)"
        )
    return RedisSingleStore(redis, keys, ttl, max_events, cache)
