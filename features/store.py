"""The Redis feature store: how session features and recommendation lists live in Redis.

Writes (the stream worker): one Lua script per event appends the compact event record to the
session log, dedupes by event id and refreshes the inactivity TTL, atomically.
Reads (the API, tests): the functions below, on the same key layout (:class:`nowplaying.keys.Keys`).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
#: KEYS: log, seen, recs, state. ARGV: event id, encoded record, max events kept, TTL seconds,
#: and what the caller already holds of the log: its length and last record.
#: Returns ``{new (1) or duplicate (0), from, log[from:], stored list of a duplicate or nil}``
#: where ``from`` is the held length when the held prefix is still the log's prefix, else 0.
APPLY_EVENT_LUA: Final = """
local status, stored = 1, false
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  status, stored = 0, redis.call('HGET', KEYS[3], ARGV[1])
else
  local ttl = tonumber(ARGV[4])
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
local held, from = tonumber(ARGV[5]), 0
if held > 0 and redis.call('LINDEX', KEYS[1], held - 1) == ARGV[6] then from = held end
return {status, from, redis.call('LRANGE', KEYS[1], from, -1), stored}
"""
APPLY_EVENT_SHA: Final = hashlib.sha1(APPLY_EVENT_LUA.encode()).hexdigest()
#: Store one session's results. KEYS: state, recs. ARGV: TTL seconds, state JSON (or ""), then
#: (trigger event id, list JSON) pairs; a list is only stored if none is stored for its trigger
#: yet (HSETNX). Returns the list JSON stored for each trigger (the one to publish).
STORE_RESULTS_LUA: Final = """
local ttl = tonumber(ARGV[1])
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl) end
local stored = {}
for i = 3, #ARGV, 2 do
  redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  stored[#stored + 1] = redis.call('HGET', KEYS[2], ARGV[i])
end
if #ARGV > 2 then redis.call('EXPIRE', KEYS[2], ttl) end
return stored
"""
STORE_RESULTS_SHA: Final = hashlib.sha1(STORE_RESULTS_LUA.encode()).hexdigest()
SCRIPTS: Final = {APPLY_EVENT_SHA: APPLY_EVENT_LUA, STORE_RESULTS_SHA: STORE_RESULTS_LUA}
#: How many users the active-users index keeps.
ACTIVE_USERS_KEPT: Final = 1000
#: How many sessions' logs and states the worker keeps in memory (least recently used go).
CACHED_SESSIONS: Final = 20_000


@dataclass(frozen=True, slots=True)
class Applied:
    """What the store answered for one event: new or a redelivery, the session log after it
    and the state folded from that log (same fold as training).

    ``error`` is set (and the rest empty) when Redis refused the call for this event alone (a
    session key of the wrong type); the event cannot be applied.
    """

    event: TrackStart | TrackEnd
    duplicate: bool
    records: tuple[str, ...]
    folded: SessionState = field(default_factory=SessionState)
    stored_list: str | None = None
    error: str | None = None

    def state(self) -> SessionState:
        """The session state after the whole returned log."""
        return self.folded

    def state_after_event(self) -> SessionState | None:
        """The state right after this event: the whole log for a new event; for a redelivery,
        the log up to the event's own record (None when it was trimmed away)."""
        if not self.duplicate:
            return self.folded
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


class SessionCache:
    """Recently seen sessions' logs and the states folded from them (least recently used go).

    A session's log only grows at its end (until it is trimmed or expires), so the state of a
    longer log is the cached state plus the new records; anything else is folded from scratch.
    """

    def __init__(self, capacity: int = CACHED_SESSIONS) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[tuple[str, ...], SessionState]] = OrderedDict()

    def records(self, session_id: str) -> tuple[str, ...]:
        entry = self._entries.get(session_id)
        return entry[0] if entry is not None else ()

    def fold(self, session_id: str, records: tuple[str, ...]) -> SessionState:
        """The state after ``records`` (the whole log), reusing the cached prefix's state."""
        entry = self._entries.get(session_id)
        if entry is not None and records[: len(entry[0])] == entry[0]:
            new = records[len(entry[0]) :]
            state = fold_events((decode_event(r) for r in new), entry[1])
        else:
            state = fold_events(decode_event(r) for r in records)
        self._entries[session_id] = (records, state)
        self._entries.move_to_end(session_id)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return state


class FeatureStore:
    """The worker's writes, each a single pipelined round trip for a whole batch.

    ``redis`` is a ``redis.asyncio.Redis`` or ``RedisCluster`` (created and closed by the caller).
    Errors from the connection propagate (the caller retries; every call here is idempotent).
    The store keeps a :class:`SessionCache`, so Redis returns only the records the worker has
    not seen and each event costs one fold step, not a fold of the whole session.
    """

    def __init__(
        self,
        redis: AsyncRedis,
        keys: Keys,
        ttl_seconds: int,
        max_events: int,
        cache: SessionCache | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds
        self._max_events = max_events
        self._cache = cache if cache is not None else SessionCache()

    async def load_scripts(self) -> None:
        """Load the Lua scripts into the server's script cache (all primaries on a cluster)."""
        for sha, script in SCRIPTS.items():
            loaded = await self._redis.script_load(script)
            if _text(loaded) != sha:  # pragma: no cover - would be a Redis bug
                raise RuntimeError(f"unexpected script sha {loaded!r}")

    async def _execute(self, build: Callable[[Any], None], *, raise_on_error: bool) -> list[Any]:
        """Run a pipeline (``transaction=False``: one round trip, split by slot on a cluster);
        when the server lost the scripts (restart, failover), load them and run it again. Safe:
        every command here is idempotent (an event already applied answers as a duplicate)."""
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            build(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in replies):
                await self.load_scripts()
                continue
            break
        for reply in replies:
            if isinstance(reply, Exception) and (
                raise_on_error or not str(reply).startswith("WRONGTYPE")
            ):
                raise reply  # the server is unhappy (OOM, LOADING, ...): the caller retries
        return replies

    async def apply_events(self, events: Sequence[TrackStart | TrackEnd]) -> list[Applied]:
        """Apply the events in order, one EVALSHA each, in one pipelined round trip."""
        if not events:
            return []
        held = [self._held(ev.session_id) for ev in events]
        replies = await self._execute(
            lambda pipe: self._queue_applies(pipe, events, held), raise_on_error=False
        )
        return [
            self._applied(ev, known, reply)
            for ev, known, reply in zip(events, held, replies, strict=True)
        ]

    def _held(self, session_id: str) -> tuple[str, ...]:
        """The cached log of the session, unless it may have been trimmed (then nothing)."""
        records = self._cache.records(session_id)
        return records if len(records) < self._max_events - 1 else ()

    def _queue_applies(
        self, pipe: Any, events: Sequence[TrackStart | TrackEnd], held: Sequence[tuple[str, ...]]
    ) -> None:
        k = self._keys
        for ev, known in zip(events, held, strict=True):
            sid = ev.session_id
            _evalsha(
                pipe,
                APPLY_EVENT_SHA,
                4,
                k.session_log(sid),
                k.session_seen(sid),
                k.session_recs(sid),
                k.session_state(sid),
                ev.event_id,
                encode_event(to_session_event(ev)),
                self._max_events,
                self._ttl,
                len(known),
                known[-1] if known else "",
            )

    def _applied(self, event: TrackStart | TrackEnd, held: tuple[str, ...], reply: Any) -> Applied:
        if isinstance(reply, Exception):
            return Applied(event, False, (), error=str(reply)[:500])
        status, start, tail, stored = int(reply[0]), int(reply[1]), reply[2], reply[3]
        records = held[:start] + tuple(_text(r) for r in tail)
        state = self._cache.fold(event.session_id, records)
        stored_list = _text(stored) if isinstance(stored, bytes | str) else None
        return Applied(event, status == 0, records, state, stored_list)

    async def write_results(
        self,
        states: Mapping[str, SessionState],
        lists: Sequence[StoredList],
        activity: Mapping[str, tuple[str, int]],
    ) -> list[str]:
        """One round trip: session states, recommendation lists, user pointers, active users.

        ``states``: session id -> state after its last event; ``activity``: user id ->
        (session id, ts of the user's last event). A list is stored under its trigger event id
        only if none is stored yet, so a list once stored is never replaced. Returns, for each
        list, the JSON that is stored (the one to publish).
        """
        by_session: dict[str, list[StoredList]] = {sid: [] for sid in states}
        for item in lists:
            by_session.setdefault(item.session_id, []).append(item)
        latest = {item.user_id: item.message_json for item in lists if item.update_latest}
        sids = list(by_session)
        replies = await self._execute(
            lambda pipe: self._queue_results(pipe, states, by_session, latest, activity),
            raise_on_error=True,
        )
        stored: dict[tuple[str, str], str] = {}
        for sid, reply in zip(sids, replies, strict=False):
            for item, value in zip(by_session[sid], reply, strict=True):
                stored[(sid, item.trigger_event_id)] = _text(value) if value else item.message_json
        return [stored[(item.session_id, item.trigger_event_id)] for item in lists]

    def _queue_results(
        self,
        pipe: Any,
        states: Mapping[str, SessionState],
        by_session: Mapping[str, list[StoredList]],
        latest: Mapping[str, str],
        activity: Mapping[str, tuple[str, int]],
    ) -> None:
        k, ttl = self._keys, self._ttl
        for sid, items in by_session.items():
            state = states.get(sid)
            args: list[Any] = [ttl, json.dumps(state_summary(state)) if state else ""]
            for item in items:
                args += [item.trigger_event_id, item.message_json]
            _evalsha(pipe, STORE_RESULTS_SHA, 2, k.session_state(sid), k.session_recs(sid), *args)
        for uid, message_json in latest.items():
            pipe.set(k.user_latest(uid), message_json, ex=ttl)
        for uid, (sid, _) in activity.items():
            pipe.set(k.user_session(uid), sid, ex=ttl)
        if activity:
            pipe.zadd(k.active_users(), {uid: ts for uid, (_, ts) in activity.items()})
            pipe.zremrangebyrank(k.active_users(), 0, -ACTIVE_USERS_KEPT - 1)


def _evalsha(pipe: Any, sha: str, numkeys: int, *keys_and_args: Any) -> None:
    """Queue an EVALSHA. Through ``execute_command``: redis-py's cluster pipeline refuses its
    ``evalsha`` method (it cannot know the keys share a slot), but routes the raw command by
    its keys, which here always share the session's hash tag."""
    pipe.execute_command("EVALSHA", sha, numkeys, *keys_and_args)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
