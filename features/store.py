"""The Redis feature store: how session features and recommendation lists live in Redis.

Writes (the stream worker): a Lua function per event appends the compact event record to the
session log, dedupes by event id and refreshes the inactivity TTL, atomically. On a single
Redis server one script call applies a whole batch and one more stores all its results; on a
Redis Cluster each event and each session is its own script call (keys in the session's slot).
Reads (the API, tests): the functions below, on the same key layout (:class:`nowplaying.keys.Keys`).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import NoScriptError, ResponseError

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

#: The per-event write, defined once and called by both apply scripts: apply one event to its
#: session, atomically. Its keys share the ``{session_id}`` hash tag: log, seen, recs, state.
#: Arguments: event id, encoded record, max events kept, TTL seconds, and what the caller
#: already holds of the log: its length and last record.
#: Returns ``{new (1) or duplicate (0), from, log[from:], stored list of a duplicate or nil}``
#: where ``from`` is the held length when the held prefix is still the log's prefix, else 0.
_APPLY_EVENT_FN: Final = """
local function apply_event(log, seen, recs, state, id, record, max_events, ttl, held, last)
  local status, stored = 1, false
  if redis.call('SADD', seen, id) == 0 then
    status, stored = 0, redis.call('HGET', recs, id)
  else
    redis.call('RPUSH', log, record)
    redis.call('LTRIM', log, -max_events, -1)
    redis.call('EXPIRE', log, ttl)
    redis.call('EXPIRE', seen, ttl)
    redis.call('EXPIRE', recs, ttl)
    redis.call('EXPIRE', state, ttl)
  end
  local from = 0
  if held > 0 and redis.call('LINDEX', log, held - 1) == last then from = held end
  return {status, from, redis.call('LRANGE', log, from, -1), stored}
end
"""
#: One event (Redis Cluster: one call per event, its keys in the session's slot).
#: KEYS: log, seen, recs, state. ARGV: event id, record, max events, TTL, held length, held last.
APPLY_EVENT_LUA: Final = (
    _APPLY_EVENT_FN
    + """
return apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2],
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
"""
)
APPLY_EVENT_SHA: Final = hashlib.sha1(APPLY_EVENT_LUA.encode()).hexdigest()
#: A whole batch in order (a single Redis server): events of one session see each other's
#: effects exactly as separate calls do. KEYS: log, seen, recs, state of each distinct session.
#: ARGV: max events, TTL, then per event: its session's index in KEYS (0-based, 4 keys each),
#: event id, record, held length, held last record. Returns one reply per event: the per-event
#: reply, or ``{-1, error}`` when Redis refused a command for that event (the event's own
#: commands up to the error took effect, as with a separate call; the other events proceed).
APPLY_BATCH_LUA: Final = (
    _APPLY_EVENT_FN
    + """
local max_events, ttl, out = tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 3, #ARGV, 5 do
  local k = tonumber(ARGV[i]) * 4
  local ok, reply = pcall(apply_event, KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4],
    ARGV[i + 1], ARGV[i + 2], max_events, ttl, tonumber(ARGV[i + 3]), ARGV[i + 4])
  if not ok then
    reply = {-1, type(reply) == 'table' and reply.err or tostring(reply)}
  end
  out[#out + 1] = reply
end
return out
"""
)
APPLY_BATCH_SHA: Final = hashlib.sha1(APPLY_BATCH_LUA.encode()).hexdigest()
#: The per-session write, defined once: the state (unless ``state_json`` is empty) and the
#: (trigger event id, list JSON) pairs ``args[first..last]``; a list is only stored if none is
#: stored for its trigger yet (HSETNX). Returns, per list, 1 when ours was stored, else the
#: JSON stored before (a redelivery's): the one to publish.
_STORE_SESSION_FN: Final = """
local function store_session(state_key, recs_key, ttl, state_json, args, first, last)
  if state_json ~= '' then redis.call('SET', state_key, state_json, 'EX', ttl) end
  local stored = {}
  for i = first, last, 2 do
    if redis.call('HSETNX', recs_key, args[i], args[i + 1]) == 1 then
      stored[#stored + 1] = 1
    else
      stored[#stored + 1] = redis.call('HGET', recs_key, args[i])
    end
  end
  if last >= first then redis.call('EXPIRE', recs_key, ttl) end
  return stored
end
"""
#: One session's results (Redis Cluster). KEYS: state, recs. ARGV: TTL seconds, state JSON (or
#: ""), then (trigger event id, list JSON) pairs.
STORE_RESULTS_LUA: Final = (
    _STORE_SESSION_FN
    + """
return store_session(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], ARGV, 3, #ARGV)
"""
)
STORE_RESULTS_SHA: Final = hashlib.sha1(STORE_RESULTS_LUA.encode()).hexdigest()
#: Everything ``write_results`` stores, in one call (a single Redis server), in the order of
#: the per-command path: sessions, user_latest, user_session, active users (ZADD + trim).
#: KEYS: state, recs of each session; user_latest of each user with a latest list;
#: user_session of each active user; the active-users index (when there are active users).
#: ARGV: TTL, users kept, #sessions, #latest, #active; per session: state JSON (or ""),
#: #lists, (trigger id, list JSON) pairs; the latest lists' JSON; per active user: session id,
#: user id, ts. Returns, per session, the per-list replies of ``store_session``.
WRITE_BATCH_LUA: Final = (
    _STORE_SESSION_FN
    + """
local ttl, kept = tonumber(ARGV[1]), tonumber(ARGV[2])
local n_sessions, n_latest, n_active = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local a, out = 6, {}
for s = 1, n_sessions do
  local last = a + 1 + 2 * tonumber(ARGV[a + 1])
  out[s] = store_session(KEYS[2 * s - 1], KEYS[2 * s], ttl, ARGV[a], ARGV, a + 2, last)
  a = last + 1
end
local k = 2 * n_sessions
for u = 1, n_latest do
  redis.call('SET', KEYS[k + u], ARGV[a], 'EX', ttl)
  a = a + 1
end
k = k + n_latest
if n_active > 0 then
  local members = {}
  for u = 1, n_active do
    redis.call('SET', KEYS[k + u], ARGV[a], 'EX', ttl)
    members[#members + 1] = ARGV[a + 2]
    members[#members + 1] = ARGV[a + 1]
    a = a + 3
  end
  local index = KEYS[k + n_active + 1]
  for i = 1, #members, 1000 do
    redis.call('ZADD', index, unpack(members, i, math.min(i + 999, #members)))
  end
  redis.call('ZREMRANGEBYRANK', index, 0, -kept - 1)
end
return out
"""
)
WRITE_BATCH_SHA: Final = hashlib.sha1(WRITE_BATCH_LUA.encode()).hexdigest()
SCRIPTS: Final = {
    APPLY_EVENT_SHA: APPLY_EVENT_LUA,
    APPLY_BATCH_SHA: APPLY_BATCH_LUA,
    STORE_RESULTS_SHA: STORE_RESULTS_LUA,
    WRITE_BATCH_SHA: WRITE_BATCH_LUA,
}
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
    """The worker's writes, each a single round trip for a whole batch.

    ``redis`` is a ``redis.asyncio.Redis`` or ``RedisCluster`` (created and closed by the caller).
    On a single server each batch is ONE script call (``APPLY_BATCH_LUA``, ``WRITE_BATCH_LUA``):
    redis-py's client cost is per command, and the batch scripts run the same per-event and
    per-session Lua functions as the cluster path. On a cluster (``batch_scripts`` False, the
    default for a ``RedisCluster`` client) a script's keys must share a slot, so each event and
    each session is its own script call and the user keys their own commands, pipelined.
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
        *,
        batch_scripts: bool | None = None,
    ) -> None:
        cluster = isinstance(redis, AsyncRedisCluster)
        if batch_scripts and cluster:
            raise ValueError("batch scripts need a single Redis server, not a cluster")
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds
        self._max_events = max_events
        self._cache = cache if cache is not None else SessionCache()
        self._batch = not cluster if batch_scripts is None else batch_scripts

    @property
    def batch_scripts(self) -> bool:
        """Whether each batch is one script call (single server) or one per event/session."""
        return self._batch

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

    async def _call_script(self, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One EVALSHA; when the server lost the scripts, load them and call again (safe for
        the same reason as in :meth:`_execute`)."""
        try:
            return await self._redis.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load_scripts()
            return await self._redis.execute_command("EVALSHA", sha, len(keys), *keys, *args)

    async def apply_events(self, events: Sequence[TrackStart | TrackEnd]) -> list[Applied]:
        """Apply the events in order in one round trip: one batch script call on a single
        server, else one EVALSHA per event, pipelined."""
        if not events:
            return []
        held = [self._held(ev.session_id) for ev in events]
        if self._batch:
            replies = await self._apply_batch(events, held)
        else:
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

    async def _apply_batch(
        self, events: Sequence[TrackStart | TrackEnd], held: Sequence[tuple[str, ...]]
    ) -> list[Any]:
        """The replies of ``APPLY_BATCH_LUA``, an event's ``{-1, error}`` turned into a
        ``ResponseError`` as a separate call's would be (and raised unless WRONGTYPE)."""
        k = self._keys
        keys: list[str] = []
        index: dict[str, int] = {}
        args: list[Any] = [self._max_events, self._ttl]
        for ev, known in zip(events, held, strict=True):
            sid = ev.session_id
            at = index.get(sid)
            if at is None:
                at = index[sid] = len(index)
                keys += [k.session_log(sid), k.session_seen(sid)]
                keys += [k.session_recs(sid), k.session_state(sid)]
            args += [
                at,
                ev.event_id,
                encode_event(to_session_event(ev)),
                len(known),
                known[-1] if known else "",
            ]
        replies: list[Any] = await self._call_script(APPLY_BATCH_SHA, keys, args)
        out: list[Any] = []
        for reply in replies:
            if int(reply[0]) != -1:
                out.append(reply)
                continue
            error = ResponseError(_text(reply[1]))
            if not str(error).startswith("WRONGTYPE"):
                raise error  # the server is unhappy: the caller retries
            out.append(error)
        return out

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
        if self._batch:
            replies = await self._write_batch(states, by_session, latest, activity)
        else:
            replies = await self._execute(
                lambda pipe: self._queue_results(pipe, states, by_session, latest, activity),
                raise_on_error=True,
            )
        stored: dict[tuple[str, str], str] = {}
        for sid, reply in zip(sids, replies, strict=False):
            for item, value in zip(by_session[sid], reply, strict=True):
                # 1: ours was stored; else the list stored before ours (a redelivery's)
                text = _text(value) if isinstance(value, bytes | str) else item.message_json
                stored[(sid, item.trigger_event_id)] = text
        return [stored[(item.session_id, item.trigger_event_id)] for item in lists]

    async def _write_batch(
        self,
        states: Mapping[str, SessionState],
        by_session: Mapping[str, list[StoredList]],
        latest: Mapping[str, str],
        activity: Mapping[str, tuple[str, int]],
    ) -> list[Any]:
        """``WRITE_BATCH_LUA``: per session, its per-list replies (no call when nothing to do)."""
        if not by_session and not activity:
            return []
        k = self._keys
        keys: list[str] = []
        args: list[Any] = [self._ttl, ACTIVE_USERS_KEPT, len(by_session), len(latest)]
        args.append(len(activity))
        for sid, items in by_session.items():
            keys += [k.session_state(sid), k.session_recs(sid)]
            state = states.get(sid)
            args += [json.dumps(state_summary(state)) if state else "", len(items)]
            for item in items:
                args += [item.trigger_event_id, item.message_json]
        for uid, message_json in latest.items():
            keys.append(k.user_latest(uid))
            args.append(message_json)
        for uid, (sid, ts) in activity.items():
            keys.append(k.user_session(uid))
            args += [sid, uid, ts]
        if activity:
            keys.append(k.active_users())
        replies: list[Any] = await self._call_script(WRITE_BATCH_SHA, keys, args)
        return replies

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
