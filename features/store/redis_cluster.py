"""The feature store on a Redis Cluster: one script call per event and per session.

A script's keys must share a slot, so each event is its own call of ``apply_event.lua`` and
each session's results its own call of ``store_results.lua`` (a session's keys share the
session's hash tag, :class:`nowplaying.keys.Keys`, its attribution keys too: read and saved in
the same calls); the user keys are plain commands. Every
batch is still one round trip: the calls are pipelined (``transaction=False``), which the
cluster client splits by node. The same commands work on a single server, where
:mod:`features.store.redis_single` does the same in one call per batch.

A fenced batch (:class:`features.store.Fencing`) takes three round trips, since each input
partition's hash has a slot of its own: the partitions' epochs checked
(``check_partition.lua``), the owned partitions' events applied (each also checked against its
session's ``pos``), then their watermarks moved (``advance_partition.lua``) once the events are
in Redis. Why that is safe without atomicity: docs/operations.md "Ordering and fencing".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from features.session import SessionState, encode_event, to_session_event
from features.session_cache import SessionCache
from features.store.attribution import attribution_args
from features.store.base import ACTIVE_USERS_KEPT, Fencing, Stamp, TopicPartition
from features.store.redis_common import (
    ListsBySession,
    RedisStore,
    SavesBySession,
    stamp_args,
    state_json,
)
from features.store.scripts import (
    ADVANCE_PARTITION,
    APPLY_EVENT,
    CHECK_PARTITION,
    STORE_RESULTS,
    AnyPipeline,
    queue_script,
)
from nowplaying.clients import AsyncRedisClient
from nowplaying.keys import Keys
from nowplaying.steer_events import InputEvent


class RedisClusterStore(RedisStore):
    """The worker's writes as per-event and per-session script calls, pipelined: what a
    ``RedisCluster`` client needs (a plain ``Redis`` client works too)."""

    def __init__(
        self,
        redis: AsyncRedisClient,
        keys: Keys,
        ttl_seconds: int,
        max_events: int,
        cache: SessionCache | None = None,
    ) -> None:
        super().__init__(
            redis,
            keys,
            ttl_seconds,
            max_events,
            cache,
            scripts=(APPLY_EVENT, CHECK_PARTITION, ADVANCE_PARTITION, STORE_RESULTS),
        )

    async def _apply(
        self,
        events: Sequence[InputEvent],
        held: Sequence[tuple[str, ...]],
        fencing: Fencing | None,
        attribution: bool,
    ) -> list[Any]:
        """With ``fencing``, three round trips: each partition's fence, then the events of the
        partitions owned, then the owned partitions' watermarks (only once the events are
        applied: a watermark never passes an event not in Redis)."""
        stamps = fencing.stamps if fencing is not None else [None] * len(events)
        owned = await self._check_partitions(fencing) if fencing is not None else set()
        todo = [i for i, stamp in enumerate(stamps) if stamp is None or stamp.tp in owned]

        def build(pipe: AnyPipeline) -> None:
            k = self._keys
            for i in todo:
                ev, known, stamp = events[i], held[i], stamps[i]
                sid = ev.session_id
                queue_script(
                    pipe,
                    APPLY_EVENT,
                    (
                        k.session_log(sid),
                        k.session_seen(sid),
                        k.session_recs(sid),
                        k.session_state(sid),
                        k.session_position(sid),
                        k.session_attribution(sid),
                        k.session_outcomes(sid),
                    ),
                    ev.event_id,
                    encode_event(to_session_event(ev)),
                    self._max_events,
                    self._ttl,
                    len(known),
                    known[-1] if known else "",
                    *stamp_args(stamp),
                    1 if attribution else 0,
                )

        replies = await self._scripts.run_pipeline(build, raise_on_error=False) if todo else []
        out: list[Any] = [[2, 0, [], None] for _ in events]  # fenced unless applied
        for i, reply in zip(todo, replies, strict=True):
            out[i] = reply
        if fencing is not None and owned:
            await self._advance_partitions(fencing, owned)
        return out

    async def _check_partitions(self, fencing: Fencing) -> set[TopicPartition]:
        """The partitions of the batch the writer owns (one pipelined script call each)."""
        tps = list(fencing.ends)

        def build(pipe: AnyPipeline) -> None:
            for topic, partition in tps:
                epoch, _ = fencing.ends[(topic, partition)]
                queue_script(pipe, CHECK_PARTITION, [self._keys.partition(topic, partition)], epoch)

        replies = await self._scripts.run_pipeline(build, raise_on_error=True)
        return {tp for tp, ok in zip(tps, replies, strict=True) if int(ok) == 1}

    async def _advance_partitions(self, fencing: Fencing, owned: set[TopicPartition]) -> None:
        def build(pipe: AnyPipeline) -> None:
            for (topic, partition), (epoch, end) in fencing.ends.items():
                if (topic, partition) in owned:
                    key = self._keys.partition(topic, partition)
                    queue_script(pipe, ADVANCE_PARTITION, [key], epoch, end)

        await self._scripts.run_pipeline(build, raise_on_error=True)

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
        def build(pipe: AnyPipeline) -> None:
            k, ttl = self._keys, self._ttl
            for sid, items in by_session.items():
                args: list[Any] = [ttl, state_json(states.get(sid)), *stamp_args(stamps.get(sid))]
                args.append(len(items))
                for item in items:
                    args += [item.trigger_event_id, item.message_json]
                args += attribution_args(saves.get(sid))
                session_keys = [k.session_state(sid), k.session_recs(sid), k.session_position(sid)]
                session_keys += [k.session_attribution(sid), k.session_outcomes(sid)]
                queue_script(pipe, STORE_RESULTS, session_keys, *args)
            for uid, message_json in latest.items():
                pipe.set(k.user_latest(uid), message_json, ex=ttl)
            for uid, (sid, _) in activity.items():
                pipe.set(k.user_session(uid), sid, ex=ttl)
            if activity:
                pipe.zadd(k.active_users(), {uid: ts for uid, (_, ts) in activity.items()})
                pipe.zremrangebyrank(k.active_users(), 0, -ACTIVE_USERS_KEPT - 1)

        return await self._scripts.run_pipeline(build, raise_on_error=True)
