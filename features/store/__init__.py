"""The feature store: how session features and recommendation lists are kept (Redis).

The store layer, apart from the pure feature code of :mod:`features` (which knows nothing of
storage): the contract the stream pipeline writes through (:mod:`features.store.base`), its
back-ends (:mod:`features.store.redis_single`: one script call per batch on a single Redis
server; :mod:`features.store.redis_cluster`: per-event and per-session calls on a Redis
Cluster), the factory that picks one by settings (:mod:`features.store.factory`), the Lua they
run (``features/store/lua/``, :mod:`features.store.scripts`) and the API's reads
(:mod:`features.store.reads`). Only this layer talks to Redis; the key layout is
:class:`nowplaying.keys.Keys`.
"""

from features.store.base import (
    ACTIVE_USERS_KEPT,
    FENCED,
    OUT_OF_ORDER,
    Applied,
    AttributionSave,
    Claim,
    FeatureStore,
    Fencing,
    Stamp,
    StoredList,
    TopicPartition,
)
from features.store.factory import feature_store_for
from features.store.reads import FeatureReader, RedisFeatureReader
from features.store.redis_cluster import RedisClusterStore
from features.store.redis_single import RedisSingleStore

__all__ = [
    "ACTIVE_USERS_KEPT",
    "FENCED",
    "OUT_OF_ORDER",
    "Applied",
    "AttributionSave",
    "Claim",
    "FeatureReader",
    "FeatureStore",
    "Fencing",
    "RedisClusterStore",
    "RedisFeatureReader",
    "RedisSingleStore",
    "Stamp",
    "StoredList",
    "TopicPartition",
    "feature_store_for",
]
