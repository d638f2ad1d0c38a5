"""What the two Redis back-ends share: the key layout, TTL and log length, the worker's
:class:`~features.session_cache.SessionCache`, and turning the scripts' replies into answers.

A back-end (:mod:`features.store.redis_single`, :mod:`features.store.redis_cluster`) only says
how a batch of events and a batch of results reach Redis (:meth:`RedisStore._apply`,
:meth:`RedisStore._write`); the per-event and per-session Lua functions they call are the same
(:mod:`features.store.scripts`), so both leave the same keys and give the same replies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import orjson

from features.session import SessionState, state_summary
from features.session_cache import SessionCache
from features.store.attribution import read_attribution
from features.store.base import (
    FENCED,
    OUT_OF_ORDER,
    Applied,
    AttributionSave,
    Claim,
    Fencing,
    Stamp,
    StoredList,
    TopicPartition,
    as_text,
)
from features.store.scripts import AnyPipeline, LuaScript, ScriptCaller
from nowplaying.clients import AsyncRedisClient
from nowplaying.keys import Keys, partition_tag
from nowplaying.steer_events import InputEvent

#: Lists to store, by session id (every session of ``states`` first, in its order).
ListsBySession: TypeAlias = Mapping[str, Sequence[StoredList]]
#: Attribution saves by session id.
SavesBySession: TypeAlias = Mapping[str, AttributionSave]
#: What the per-event script refused: its status in the reply -> ``Applied.refused``.
_REFUSALS = {2: FENCED, 3: OUT_OF_ORDER}


class RedisStore(ABC):
    """A :class:`~features.store.base.FeatureStore` on Redis (``redis`` is created and closed
    by the caller). The store keeps a :class:`SessionCache`, so Redis returns only the records
    the worker has not seen and each event costs one fold step, not a fold of the whole
    session. Errors from the connection propagate (the caller retries; every call here is
    idempotent)."""

    def __init__(
        self,
        redis: AsyncRedisClient,
        keys: Keys,
        ttl_seconds: int,
        max_events: int,
        cache: SessionCache | None,
        *,
        scripts: Sequence[LuaScript],
    ) -> None:
        self._keys = keys
        self._ttl = ttl_seconds
        self._max_events = max_events
        self._cache = cache if cache is not None else SessionCache()
        self._scripts = ScriptCaller(redis, scripts)

    async def load_scripts(self) -> None:
        """Load the back-end's Lua scripts into the server's script cache (every primary of a
        cluster). Optional: a call that finds them missing loads them itself."""
        await self._scripts.load()

    async def claim_partitions(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Claim]:
        """One round trip: ``HINCRBY epoch 1`` and ``HGET next`` per partition."""
        if not partitions:
            return {}
        keys = [self._keys.partition(topic, partition) for topic, partition in partitions]

        def build(pipe: AnyPipeline) -> None:
            for key in keys:
                pipe.hincrby(key, "epoch", 1)
                pipe.hget(key, "next")

        replies = await self._scripts.run_pipeline(build, raise_on_error=True)
        return {
            tp: Claim(int(epoch), None if nxt is None else int(nxt))
            for tp, epoch, nxt in zip(partitions, replies[::2], replies[1::2], strict=True)
        }

    async def apply_events(
        self,
        events: Sequence[InputEvent],
        fencing: Fencing | None = None,
        *,
        attribution: bool = False,
    ) -> list[Applied]:
        """Apply the events in order (one round trip; three on a cluster with ``fencing``),
        with ``attribution`` reading the sessions' attribution in the same round trip.
        A batch of dead letters only (no events) still moves the watermark."""
        if not events and (fencing is None or not fencing.ends):
            return []
        held = [self._held(ev.session_id) for ev in events]
        replies = await self._apply(events, held, fencing, attribution)
        return [
            self._applied(ev, known, reply)
            for ev, known, reply in zip(events, held, replies, strict=True)
        ]

    async def write_results(
        self,
        states: Mapping[str, SessionState],
        lists: Sequence[StoredList],
        activity: Mapping[str, tuple[str, int]],
        stamps: Mapping[str, Stamp] | None = None,
        attribution: Sequence[AttributionSave] = (),
    ) -> list[str]:
        """One round trip: session states, recommendation lists, attribution, user pointers,
        active users (the contract: :meth:`features.store.base.FeatureStore.write_results`)."""
        by_session: dict[str, list[StoredList]] = {sid: [] for sid in states}
        for item in lists:
            by_session.setdefault(item.session_id, []).append(item)
        saves = {save.session_id: save for save in attribution}
        for sid in saves:
            by_session.setdefault(sid, [])
        latest = {item.user_id: item.message_json for item in lists if item.update_latest}
        replies = await self._write(
            states, by_session, latest, activity, stamps=stamps or {}, saves=saves
        )
        stored: dict[tuple[str, str], str] = {}
        for sid, reply in zip(by_session, replies, strict=False):
            for item, value in zip(by_session[sid], reply, strict=True):
                # 1: ours was stored; else the list stored before ours (a redelivery's)
                text = as_text(value) if isinstance(value, bytes | str) else item.message_json
                stored[(sid, item.trigger_event_id)] = text
        return [stored[(item.session_id, item.trigger_event_id)] for item in lists]

    @abstractmethod
    async def _apply(
        self,
        events: Sequence[InputEvent],
        held: Sequence[tuple[str, ...]],
        fencing: Fencing | None,
        attribution: bool,
    ) -> list[Any]:
        """Per event, the reply of the Lua ``apply_event`` (or the ``ResponseError`` Redis
        answered for that event alone, a WRONGTYPE), with ``attribution`` its
        ``with_attribution`` read appended."""

    @abstractmethod
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
        """Store everything; per session of ``by_session``, the Lua ``store_session`` reply."""

    def _held(self, session_id: str) -> tuple[str, ...]:
        """The cached log of the session, unless it may have been trimmed (then nothing)."""
        records = self._cache.records(session_id)
        return records if len(records) < self._max_events - 1 else ()

    def _applied(self, event: InputEvent, held: tuple[str, ...], reply: Any) -> Applied:
        if isinstance(reply, Exception):
            return Applied(event, False, (), error=str(reply)[:500])
        status, start, tail, stored = int(reply[0]), int(reply[1]), reply[2], reply[3]
        if status in _REFUSALS:
            return Applied(event, False, (), refused=_REFUSALS[status])
        records = held[:start] + tuple(as_text(r) for r in tail)
        state = self._cache.fold(event.session_id, records)
        stored_list = as_text(stored) if isinstance(stored, bytes | str) else None
        att, outcome = read_attribution(reply)
        return Applied(event, status == 0, records, state, stored_list, None, None, att, outcome)


def stamp_args(stamp: Stamp | None) -> list[Any]:
    """A stamp as the scripts take it: partition tag, epoch, offset (``"", 0, 0`` for none)."""
    if stamp is None:
        return ["", 0, 0]
    return [partition_tag(stamp.topic, stamp.partition), stamp.epoch, stamp.offset]


def state_json(state: SessionState | None) -> str:
    """The stored form of a session's state (compact JSON, by orjson); ``""`` (store nothing)
    when there is none."""
    return orjson.dumps(state_summary(state)).decode() if state else ""
