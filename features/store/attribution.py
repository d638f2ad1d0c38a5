"""Where each session's attribution state lives: Redis, next to the session's other keys.

Per session (same hash slot as its log): ``np:s:{<session>}:att`` (STRING, the JSON of
:class:`features.attribution.AttributionState`) and ``np:s:{<session>}:out`` (HASH, event id ->
the outcome message that event completed, so a redelivered event republishes the same bytes).
Both expire with the session (``NP_SESSION_TTL_SECONDS``).

A save is one Lua call per session, atomic in its slot: the state is written only when it is
further along the same partition than the stored one (so a stale or repeated writer never moves a
session's attribution back), and the outcomes are added with ``HSETNX`` (never replaced).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from features.attribution import AttributionState, dump_state, load_state
from features.store.base import as_text
from features.store.scripts import AnyPipeline, ScriptCaller, lua_script, queue_script
from nowplaying.keys import Keys

SAVE_ATTRIBUTION: Final = lua_script("save_attribution.lua")


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """A session's new state and the outcomes its events completed (event id -> JSON)."""

    session_id: str
    state: AttributionState
    emitted: Mapping[str, str]


class AttributionStore(Protocol):
    async def load(self, session_ids: Sequence[str]) -> dict[str, AttributionState]:
        """Each session's state (an empty one when none is stored)."""
        ...

    async def stored_outcomes(
        self, events: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The outcome JSON each ``(session id, event id)`` completed, for those that did."""
        ...

    async def save(self, updates: Sequence[SessionUpdate]) -> None:
        """Store the states (unless the stored one is further along) and outcomes."""
        ...


class RedisAttributionStore:
    """The store on a ``redis.asyncio`` client, one server or a cluster (each call stays in its
    session's slot; bytes or text replies)."""

    def __init__(self, redis: Any, keys: Keys, ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds
        self._scripts = ScriptCaller(redis, [SAVE_ATTRIBUTION])

    async def load(self, session_ids: Sequence[str]) -> dict[str, AttributionState]:
        if not session_ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for sid in session_ids:
            pipe.get(self._keys.session_attribution(sid))
        answers = await pipe.execute()
        return {
            sid: load_state(None if raw is None else as_text(raw))
            for sid, raw in zip(session_ids, answers, strict=True)
        }

    async def stored_outcomes(
        self, events: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        if not events:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for sid, eid in events:
            pipe.hget(self._keys.session_outcomes(sid), eid)
        answers = await pipe.execute()
        return {
            key: as_text(raw) for key, raw in zip(events, answers, strict=True) if raw is not None
        }

    async def save(self, updates: Sequence[SessionUpdate]) -> None:
        if not updates:
            return

        def build(pipe: AnyPipeline) -> None:
            for u in updates:
                args: list[Any] = [u.state.tag, u.state.offset, dump_state(u.state), self._ttl]
                for eid, body in u.emitted.items():
                    args += [eid, body]
                keys = [
                    self._keys.session_attribution(u.session_id),
                    self._keys.session_outcomes(u.session_id),
                ]
                queue_script(pipe, SAVE_ATTRIBUTION, keys, *args)

        await self._scripts.run_pipeline(build, raise_on_error=True)
