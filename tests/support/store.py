"""Run code against the real Redis through the worker's feature store (its write path)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from features.store import FeatureStore
from nowplaying.clients import async_redis_client
from nowplaying.events import RecommendationMessage, TrackStart
from nowplaying.keys import Keys
from nowplaying.settings import Settings

T = TypeVar("T")


def run_with_store(
    settings: Settings,
    body: Callable[[FeatureStore, Any], Awaitable[T]],
    *,
    batch_scripts: bool | None = None,
) -> T:
    """Open a Redis client and a FeatureStore (scripts loaded; ``batch_scripts`` as given, else
    the client's default) for ``settings``, run ``body`` with both, close the client, and return
    what ``body`` returned."""

    async def main() -> T:
        redis = async_redis_client(settings)
        try:
            store = FeatureStore(
                redis,
                Keys(settings.redis_key_prefix),
                settings.session_ttl_seconds,
                settings.max_session_events,
                batch_scripts=batch_scripts,
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
