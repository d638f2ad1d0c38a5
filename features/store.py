"""The Redis feature store: how session features and recommendation lists live in Redis.

Writes (the stream worker): one Lua script per event appends the compact event record to the
session log, dedupes by event id and refreshes the inactivity TTL, atomically.
Reads (the API, tests): the functions below, on the same key layout (:class:`nowplaying.keys.Keys`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.exceptions import NoScriptError

from features.session import (
    SessionEvent,
    SessionState,
    decode_event,
    encode_event,
    fold_events,
    state_summary,
    to_session_event,
)
from nowplaying.events import RecommendationMessage, TrackEnd, TrackStart
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
    return None if raw is None else _text(raw)


async def read_active_users(redis: AsyncRedis, keys: Keys, limit: int = 50) -> list[str]:
    """Most recently active users first."""
    raw = await redis.zrevrange(keys.active_users(), 0, limit - 1)
    return [_text(r) for r in raw]


# --- write path (the stream worker) ---------------------------------------------------------

#: Apply one event to its session, atomically. All keys share the ``{session_id}`` hash tag.
#: KEYS: log, seen, recs, state. ARGV: event id, encoded record, max events kept, TTL seconds.
#: Returns ``{1, log}`` for a new event, ``{0, log, stored list or false}`` for a duplicate.
APPLY_EVENT_LUA: Final = """
local ttl = tonumber(ARGV[4])
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return {0, redis.call('LRANGE', KEYS[1], 0, -1), redis.call('HGET', KEYS[3], ARGV[1])}
end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
return {1, redis.call('LRANGE', KEYS[1], 0, -1)}
"""
APPLY_EVENT_SHA: Final = hashlib.sha1(APPLY_EVENT_LUA.encode()).hexdigest()
#: How many users the active-users index keeps.
ACTIVE_USERS_KEPT: Final = 1000


@dataclass(frozen=True, slots=True)
class Applied:
    """What the store answered for one event: new or a redelivery, and the session log after it.

    ``error`` is set (and the rest empty) when Redis refused the call for this event alone (a
    session key of the wrong type); the event cannot be applied.
    """

    event: TrackStart | TrackEnd
    duplicate: bool
    records: tuple[str, ...]
    stored_list: str | None = None
    error: str | None = None

    def state(self) -> SessionState:
        """The session state after the whole returned log (same fold as training)."""
        return fold_events(decode_event(r) for r in self.records)

    def state_after_event(self) -> SessionState | None:
        """The state right after this event: the whole log for a new event; for a redelivery,
        the log up to the event's own record (None when it was trimmed away)."""
        if not self.duplicate:
            return self.state()
        record = encode_event(to_session_event(self.event))
        try:
            end = self.records.index(record) + 1
        except ValueError:
            return None
        return fold_events(decode_event(r) for r in self.records[:end])


@dataclass(frozen=True, slots=True)
class StoredList:
    """A recommendation list to store: JSON of the message, and whether it is the user's latest."""

    user_id: str
    session_id: str
    trigger_event_id: str
    message_json: str
    update_latest: bool = True


class FeatureStore:
    """The worker's writes, each a single pipelined round trip for a whole batch.

    ``redis`` is a ``redis.asyncio.Redis`` or ``RedisCluster`` (created and closed by the caller).
    Errors from the connection propagate (the caller retries; every call here is idempotent).
    """

    def __init__(self, redis: AsyncRedis, keys: Keys, ttl_seconds: int, max_events: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds
        self._max_events = max_events

    async def load_scripts(self) -> None:
        """Load the Lua script into the server's script cache (all primaries on a cluster)."""
        sha = await self._redis.script_load(APPLY_EVENT_LUA)
        if _text(sha) != APPLY_EVENT_SHA:  # pragma: no cover - would be a Redis bug
            raise RuntimeError(f"unexpected script sha {sha!r}")

    async def apply_events(self, events: Sequence[TrackStart | TrackEnd]) -> list[Applied]:
        """Apply the events in order, one EVALSHA each, in one pipelined round trip."""
        if not events:
            return []
        replies = await self._eval_all(events)
        if any(isinstance(r, NoScriptError) for r in replies):
            # The server lost its script cache (restart, failover): load and run again. Safe,
            # because events already applied answer as duplicates.
            await self.load_scripts()
            replies = await self._eval_all(events)
        for reply in replies:
            if isinstance(reply, Exception) and not str(reply).startswith("WRONGTYPE"):
                raise reply  # the server is unhappy (OOM, LOADING, ...): the caller retries
        return [_applied(ev, reply) for ev, reply in zip(events, replies, strict=True)]

    async def _eval_all(self, events: Sequence[TrackStart | TrackEnd]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        k = self._keys
        for ev in events:
            sid = ev.session_id
            record = encode_event(to_session_event(ev))
            pipe.evalsha(
                APPLY_EVENT_SHA,
                4,
                k.session_log(sid),
                k.session_seen(sid),
                k.session_recs(sid),
                k.session_state(sid),
                ev.event_id,
                record,
                self._max_events,
                self._ttl,
            )
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def write_results(
        self,
        states: Mapping[str, SessionState],
        lists: Sequence[StoredList],
        activity: Mapping[str, tuple[str, int]],
    ) -> list[str]:
        """One round trip: session states, recommendation lists, user pointers, active users.

        ``states``: session id -> state after its last event; ``activity``: user id ->
        (session id, ts of the user's last event). A list is stored with HSETNX under its
        trigger event id, so a list once stored is never replaced. Returns, for each list, the
        JSON that is stored (the one to publish).
        """
        k, ttl = self._keys, self._ttl
        pipe = self._redis.pipeline(transaction=False)
        for sid, state in states.items():
            pipe.set(k.session_state(sid), json.dumps(state_summary(state)), ex=ttl)
        for item in lists:
            recs = k.session_recs(item.session_id)
            pipe.hsetnx(recs, item.trigger_event_id, item.message_json)
            pipe.expire(recs, ttl)
            pipe.hget(recs, item.trigger_event_id)
            if item.update_latest:
                pipe.set(k.user_latest(item.user_id), item.message_json, ex=ttl)
        for uid, (sid, ts) in activity.items():
            pipe.set(k.user_session(uid), sid, ex=ttl)
            pipe.zadd(k.active_users(), {uid: ts})
        if activity:
            pipe.zremrangebyrank(k.active_users(), 0, -ACTIVE_USERS_KEPT - 1)
        replies: list[Any] = await pipe.execute(raise_on_error=True)
        stored: list[str] = []
        i = len(states)
        for item in lists:
            value = replies[i + 2]
            stored.append(item.message_json if value is None else _text(value))
            i += 4 if item.update_latest else 3
        return stored


def _applied(event: TrackStart | TrackEnd, reply: Any) -> Applied:
    if isinstance(reply, Exception):
        return Applied(event, False, (), error=str(reply)[:500])
    status, log = int(reply[0]), reply[1]
    records = tuple(_text(r) for r in log)
    if status == 1:
        return Applied(event, False, records)
    stored = reply[2] if len(reply) > 2 else None
    return Applied(event, True, records, None if stored is None else _text(stored))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
