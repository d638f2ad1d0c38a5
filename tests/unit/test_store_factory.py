"""The worker's feature-store back-end is picked by ``redis_cluster`` and must match its client."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from features.store import RedisClusterStore, RedisSingleStore, feature_store_for
from tests.support.settings import isolated_settings


def test_the_back_end_follows_redis_cluster_and_refuses_a_mismatched_client() -> None:
    async def main() -> None:
        cluster = RedisCluster(host="127.0.0.1", port=1)  # not connected until used
        plain = Redis(host="127.0.0.1", port=1)
        single_settings = isolated_settings(redis_cluster=False)
        cluster_settings = isolated_settings(redis_cluster=True)
        try:
            assert isinstance(feature_store_for(single_settings, plain), RedisSingleStore)
            assert isinstance(feature_store_for(cluster_settings, cluster), RedisClusterStore)
            with pytest.raises(ValueError, match="RedisCluster"):
                feature_store_for(cluster_settings, plain)
            with pytest.raises(ValueError, match="redis_cluster"):
                feature_store_for(single_settings, cluster)
        finally:
            await plain.aclose()

    asyncio.run(main())
