"""The read side of the feature store: what the API and the live page read.

:class:`FeatureReader` is what the API depends on; :class:`RedisFeatureReader` reads the key
layout the worker's writes leave (:class:`nowplaying.keys.Keys`), on a single server or a
cluster (every read is one key). Errors of the connection propagate (the API answers 503).
"""

from __future__ import annotations

import json
from typing import Protocol, cast

from features.session import SessionEvent, decode_event
from features.store.base import as_text
from nowplaying.clients import AsyncRedisClient
from nowplaying.events import RecommendationMessage
from nowplaying.keys import Keys


class FeatureReader(Protocol):
    """What the API reads of the store."""

    async def latest_recommendations(self, user_id: str) -> RecommendationMessage | None:
        """The user's latest Now Playing list, or None."""
        ...

    async def session_features(self, session_id: str) -> dict[str, object] | None:
        """The session's named features (``features.session.state_summary``), or None."""
        ...

    async def session_events(self, session_id: str, last: int | None = None) -> list[SessionEvent]:
        """The session's events in play order, only the ``last`` ones when given (empty when
        the session is unknown or expired)."""
        ...

    async def user_session(self, user_id: str) -> str | None:
        """The id of the user's most recent session, or None."""
        ...

    async def active_users(self, limit: int = 50) -> list[str]:
        """Up to ``limit`` users, most recently active first."""
        ...


class RedisFeatureReader:
    """:class:`FeatureReader` on Redis (``redis`` is created and closed by the caller)."""

    def __init__(self, redis: AsyncRedisClient, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def latest_recommendations(self, user_id: str) -> RecommendationMessage | None:
        raw = await self._redis.get(self._keys.user_latest(user_id))
        return None if raw is None else RecommendationMessage.model_validate_json(raw)

    async def session_features(self, session_id: str) -> dict[str, object] | None:
        raw = await self._redis.get(self._keys.session_state(session_id))
        if raw is None:
            return None
        value: dict[str, object] = json.loads(raw)
        return value

    async def session_events(self, session_id: str, last: int | None = None) -> list[SessionEvent]:
        start = 0 if last is None else -last
        records = await self._redis.lrange(self._keys.session_log(session_id), start, -1)
        return [decode_event(r) for r in records]

    async def user_session(self, user_id: str) -> str | None:
        raw = await self._redis.get(self._keys.user_session(user_id))
        return None if raw is None else as_text(raw)

    async def active_users(self, limit: int = 50) -> list[str]:
        raw = await self._redis.zrevrange(self._keys.active_users(), 0, limit - 1)
        return [as_text(member) for member in cast(list[bytes | str], raw)]
