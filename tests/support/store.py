"""Run code against the real Redis through the worker's feature store (its write path), and
the play events and list JSON the store tests feed it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from features.store import RedisClusterStore, feature_store_for
from features.store.redis_common import RedisStore
from nowplaying.clients import AsyncRedisClient, async_redis_client
from nowplaying.events import PlayEvent, RecommendationMessage, TrackEnd, TrackStart
from nowplaying.keys import Keys
from nowplaying.settings import Settings

T = TypeVar("T")
#: Event time of the first event of :func:`start` / :func:`end`.
TS = 1_795_900_000_000


def run_with_store(
    settings: Settings,
    body: Callable[[RedisStore, AsyncRedisClient], Awaitable[T]],
    *,
    per_event: bool = False,
) -> T:
    """Open a Redis client and a feature store for ``settings`` (the back-end the worker would
    pick, or with ``per_event`` the per-event/per-session one whatever the client; scripts
    loaded), run ``body`` with both, close the client, and return what ``body`` returned."""

    async def main() -> T:
        redis = async_redis_client(settings)
        try:
            store: RedisStore = (
                RedisClusterStore(
                    redis,
                    Keys(settings.redis_key_prefix),
                    settings.session_ttl_seconds,
                    settings.max_session_events,
                )
                if per_event
                else feature_store_for(settings, redis)
            )
            await store.load_scripts()
            return await body(store, redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def list_message(event: TrackStart, generated_at: int) -> str:
    """The JSON of an (empty) recommendation list for ``event``, as the worker stores it."""
    return RecommendationMessage(
        user_id=event.user_id,
        session_id=event.session_id,
        trigger_event_id=event.event_id,
        model_version="m1",
        generated_at=generated_at,
        recommendations=[],
    ).model_dump_json()


def start(session: str, i: int, user: str = "u1") -> TrackStart:
    """The ``i``-th track start of ``session`` (track ``t<i>``)."""
    return TrackStart(
        event_type="track_start",
        event_id=f"{session}-{i}-s",
        user_id=user,
        session_id=session,
        track_id=f"t{i}",
        ts=TS + 2 * i,
    )


def end(session: str, i: int, user: str = "u1") -> TrackEnd:
    """The end of the ``i``-th track of ``session`` (skipped for odd ``i``)."""
    return TrackEnd(
        event_type="track_end",
        event_id=f"{session}-{i}-e",
        user_id=user,
        session_id=session,
        track_id=f"t{i}",
        ts=TS + 2 * i + 1,
        skipped=i % 2 == 1,
    )


def plays(session: str, n: int, user: str = "u1") -> list[PlayEvent]:
    """``n`` tracks of ``session`` started and ended, in order."""
    return [e for i in range(n) for e in (start(session, i, user), end(session, i, user))]
