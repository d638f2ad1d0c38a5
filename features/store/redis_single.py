"""The feature store on a single Redis server: each batch is ONE script call.

``apply_events`` is one call of ``apply_batch.lua`` and ``write_results`` one of
``write_batch.lua`` (the sessions' attribution read and saved in the same two calls): redis-py's
client cost is per command, and the batch scripts run the same per-event and per-session Lua
functions as the cluster back-end, in the same order, so they leave the same keys and give the
same replies (tests/integration/test_store_redis.py compares them). A cluster cannot run them
(a script's keys must share a slot): see :mod:`features.store.redis_cluster`. With a
:class:`features.store.Fencing`, the same call checks each partition's epoch, applies only the
partitions owned and moves their watermarks: atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from features.session import SessionState, encode_event, to_session_event
from features.session_cache import SessionCache
from features.store.attribution import attribution_args
from features.store.base import ACTIVE_USERS_KEPT, Fencing, Stamp, as_text
from features.store.redis_common import (
    ListsBySession,
    RedisStore,
    SavesBySession,
    stamp_args,
    state_json,
)
from features.store.scripts import APPLY_BATCH, WRITE_BATCH
from nowplaying.keys import Keys, partition_tag
from nowplaying.steer_events import InputEvent


class RedisSingleStore(RedisStore):
    """The worker's writes on one Redis server, a script call per batch."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        ttl_seconds: int,
        max_events: int,
        cache: SessionCache | None = None,
    ) -> None:
        super().__init__(
            redis, keys, ttl_seconds, max_events, cache, scripts=(APPLY_BATCH, WRITE_BATCH)
        )

    async def _apply(
        self,
        events: Sequence[InputEvent],
        held: Sequence[tuple[str, ...]],
        fencing: Fencing | None,
        attribution: bool,
    ) -> list[Any]:
        """The replies of ``apply_batch.lua``, an event's ``{-1, error}`` turned into a
        ``ResponseError`` as a separate call's would be (and raised unless WRONGTYPE)."""
        k = self._keys
        keys: list[str] = []
        index: dict[str, int] = {}
        ends = fencing.ends if fencing is not None else {}
        partitions = {tp: j for j, tp in enumerate(ends, start=1)}
        stamps = fencing.stamps if fencing is not None else [None] * len(events)
        per_event: list[Any] = []
        for ev, known, stamp in zip(events, held, stamps, strict=True):
            sid = ev.session_id
            at = index.get(sid)
            if at is None:
                at = index[sid] = len(index)
                keys += [k.session_log(sid), k.session_seen(sid), k.session_recs(sid)]
                keys += [k.session_state(sid), k.session_position(sid)]
                keys += [k.session_attribution(sid), k.session_outcomes(sid)]
            per_event += [
                at,
                ev.event_id,
                encode_event(to_session_event(ev)),
                len(known),
                known[-1] if known else "",
                0 if stamp is None else partitions[stamp.tp],
                0 if stamp is None else stamp.offset,
                1 if attribution else 0,
            ]
        args: list[Any] = [self._max_events, self._ttl, len(index), len(partitions)]
        for (topic, partition), (epoch, end) in ends.items():
            keys.append(k.partition(topic, partition))
            args += [partition_tag(topic, partition), epoch, end]
        replies: list[Any] = await self._scripts.call(APPLY_BATCH, keys, args + per_event)
        out: list[Any] = []
        for reply in replies:
            if int(reply[0]) != -1:
                out.append(reply)
                continue
            error = ResponseError(as_text(reply[1]))
            if not str(error).startswith("WRONGTYPE"):
                raise error  # the server is unhappy: the caller retries
            out.append(error)
        return out

    async def _write(
        self,
        states: Mapping[str, SessionState],
        by_session: ListsBySession,
        latest: Mapping[str, str],
        activity: Mapping[str, tuple[str, int]],
        *,
        stamps: Mapping[str, Stamp],
        saves: SavesBySession,
    ) -> list[Any]:
        """``write_batch.lua``: per session, its per-list replies (no call when nothing to do)."""
        if not by_session and not activity:
            return []
        k = self._keys
        keys: list[str] = []
        args: list[Any] = [self._ttl, ACTIVE_USERS_KEPT, len(by_session), len(latest)]
        args.append(len(activity))
        for sid, items in by_session.items():
            keys += [k.session_state(sid), k.session_recs(sid), k.session_position(sid)]
            keys += [k.session_attribution(sid), k.session_outcomes(sid)]
            args += [state_json(states.get(sid)), *stamp_args(stamps.get(sid)), len(items)]
            for item in items:
                args += [item.trigger_event_id, item.message_json]
            args += attribution_args(saves.get(sid))
        for uid, message_json in latest.items():
            keys.append(k.user_latest(uid))
            args.append(message_json)
        for uid, (sid, ts) in activity.items():
            keys.append(k.user_session(uid))
            args += [sid, uid, ts]
        if activity:
            keys.append(k.active_users())
        replies: list[Any] = await self._scripts.call(WRITE_BATCH, keys, args)
        return replies
