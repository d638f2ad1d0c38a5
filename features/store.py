"""The Redis feature store: how session features and recommendation lists live in Redis.

Writes (the stream worker): one Lua script per event appends the compact event record to the
session log, dedupes by event id and refreshes the inactivity TTL, atomically.
Reads (the API, tests): the functions below, on the same key layout (:class:`nowplaying.keys.Keys`).
"""

from __future__ import annotations

import json
from typing import Any

from features.session import SessionEvent, decode_event
from nowplaying.events import RecommendationMessage
from nowplaying.keys import Keys

# redis.asyncio.Redis and redis.asyncio.RedisCluster share the command methods used here.
AsyncRedis = Any


async def read_latest_recommendations(
    redis: AsyncRedis, keys: Keys, user_id: str
) -> RecommendationMessage | None:
    raw = await redis.get(keys.user_latest(user_id))
    return None if raw is None else RecommendationMessage.model_validate_json(raw)


async def read_session_features(
    redis: AsyncRedis, keys: Keys, session_id: str
) -> dict[str, object] | None:
    """The session's named features (``features.session.state_summary``), or None."""
    raw = await redis.get(keys.session_state(session_id))
    if raw is None:
        return None
    value: dict[str, object] = json.loads(raw)
    return value


async def read_session_events(redis: AsyncRedis, keys: Keys, session_id: str) -> list[SessionEvent]:
    """The session's events in play order (empty when the session is unknown or expired)."""
    return [decode_event(r) for r in await redis.lrange(keys.session_log(session_id), 0, -1)]


async def read_user_session(redis: AsyncRedis, keys: Keys, user_id: str) -> str | None:
    raw = await redis.get(keys.user_session(user_id))
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def read_active_users(redis: AsyncRedis, keys: Keys, limit: int = 50) -> list[str]:
    """Most recently active users first."""
    raw = await redis.zrevrange(keys.active_users(), 0, limit - 1)
    return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]
