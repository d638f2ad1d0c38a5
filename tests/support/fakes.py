"""Typed in-memory stand-ins for the pipeline's dependencies (unit tests, no services).

* :class:`MemoryStore`: the feature store in memory, a :class:`features.store.FeatureStore` and
  a :class:`features.store.FeatureReader`. It keeps Redis's key layout (:class:`Keys`) and
  expires keys by its clock as Redis would, and it passes the same contract suite as the Redis
  back-ends (tests/contract/test_feature_store_contract.py).
* :class:`FakeRanker`: deterministic lists, a :class:`streams.pipeline.Ranker`.
* :class:`FakePublisher`: records what is sent, a :class:`streams.pipeline.Publisher`.
* :class:`RecordingSensor`: records every instrumentation hook call, a
  :class:`streams.instrumentation.PipelineSensor`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from features.session import (
    SessionEvent,
    SessionState,
    decode_event,
    encode_event,
    fold_events,
    state_summary,
    to_session_event,
)
from features.store import (
    ACTIVE_USERS_KEPT,
    FENCED,
    OUT_OF_ORDER,
    Applied,
    AttributionSave,
    Claim,
    Fencing,
    Stamp,
    StoredList,
    TopicPartition,
)
from nowplaying.events import Recommendation, RecommendationMessage
from nowplaying.keys import Keys, partition_tag
from nowplaying.outcomes import OutcomeMessage
from nowplaying.steer_events import InputEvent


class Keyspace:
    """Strings, lists, sets, hashes and sorted sets by key, each key with an optional deadline
    on ``clock`` (seconds); a key past its deadline is gone, as in Redis."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.strings: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.sets: dict[str, set[str]] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self._deadlines: dict[str, float] = {}

    def _tables(self) -> tuple[MutableMapping[str, Any], ...]:
        return (self.strings, self.lists, self.sets, self.hashes, self.zsets)

    def expire_due(self) -> None:
        """Drop every key whose deadline has passed (call before reading or writing)."""
        now = self.clock()
        for key in [k for k, deadline in self._deadlines.items() if deadline <= now]:
            for table in self._tables():
                table.pop(key, None)
            del self._deadlines[key]

    def exists(self, key: str) -> bool:
        return any(key in table for table in self._tables())

    def expire(self, key: str, seconds: int) -> None:
        """EXPIRE: a key that exists gets ``seconds`` to live; a missing key stays missing."""
        if self.exists(key):
            self._deadlines[key] = self.clock() + seconds

    def set_string(self, key: str, value: str, seconds: int) -> None:
        """SET ... EX."""
        self.strings[key] = value
        self._deadlines[key] = self.clock() + seconds

    def ttl(self, key: str) -> int:
        """TTL: seconds left (rounded), -1 for a key without a deadline, -2 for a missing key."""
        self.expire_due()
        if not self.exists(key):
            return -2
        deadline = self._deadlines.get(key)
        return -1 if deadline is None else int(deadline - self.clock() + 0.5)


class MemoryStore:
    """The feature-store contract in memory, on :class:`Keyspace` (Redis's key layout).

    ``apply_failures``: how many next :meth:`apply_events` calls raise ``ConnectionError``
    (a Redis outage); ``apply_calls`` counts the calls. :meth:`sibling` is another worker's
    store on the same data.
    """

    def __init__(
        self,
        *,
        keys: Keys | None = None,
        ttl_seconds: int = 1800,
        max_events: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        data: Keyspace | None = None,
    ) -> None:
        self.keys = keys if keys is not None else Keys()
        self.ttl_seconds = ttl_seconds
        self.max_events = max_events
        self.data = data if data is not None else Keyspace(clock)
        self.apply_failures = 0
        self.apply_calls = 0

    def sibling(self) -> MemoryStore:
        return MemoryStore(
            keys=self.keys, ttl_seconds=self.ttl_seconds, max_events=self.max_events, data=self.data
        )

    # --- FeatureStore ---------------------------------------------------------------------

    async def claim_partitions(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Claim]:
        out = {}
        for topic, partition in partitions:
            fence = self.data.hashes.setdefault(self.keys.partition(topic, partition), {})
            fence["epoch"] = str(int(fence.get("epoch", "0")) + 1)
            nxt = fence.get("next")
            out[(topic, partition)] = Claim(int(fence["epoch"]), None if nxt is None else int(nxt))
        return out

    async def apply_events(
        self,
        events: Sequence[InputEvent],
        fencing: Fencing | None = None,
        *,
        attribution: bool = False,
    ) -> list[Applied]:
        self.apply_calls += 1
        if self.apply_failures:
            self.apply_failures -= 1
            raise ConnectionError("redis down")
        d, k = self.data, self.keys
        d.expire_due()
        ends = fencing.ends if fencing is not None else {}
        owned = {tp for tp, (epoch, _) in ends.items() if self._owns(tp, epoch)}
        stamps = fencing.stamps if fencing is not None else [None] * len(events)
        out = []
        for ev, stamp in zip(events, stamps, strict=True):
            if stamp is not None and stamp.tp not in owned:
                out.append(Applied(ev, False, (), refused=FENCED))
            else:
                out.append(self._apply_one(ev, stamp, attribution))
        for tp in owned:
            fence = d.hashes[k.partition(*tp)]
            fence["next"] = str(max(int(fence.get("next", "0")), ends[tp][1]))
        return out

    def _owns(self, tp: TopicPartition, epoch: int) -> bool:
        fence = self.data.hashes.setdefault(self.keys.partition(*tp), {})
        return int(fence.setdefault("epoch", str(epoch))) == epoch

    def _mark(self, session_id: str, stamp: Stamp | None) -> dict[str, str] | None:
        """The session's pos when it comes from the stamp's partition, else None."""
        if stamp is None:
            return None
        mark = self.data.hashes.get(self.keys.session_position(session_id), {})
        return mark if mark.get("p") == partition_tag(stamp.topic, stamp.partition) else None

    @staticmethod
    def _behind(mark: dict[str, str], stamp: Stamp) -> bool:
        return int(mark["e"]) > stamp.epoch or int(mark["o"]) > stamp.offset

    def _apply_one(self, ev: InputEvent, stamp: Stamp | None, attribution: bool) -> Applied:
        d, k, ttl, sid = self.data, self.keys, self.ttl_seconds, ev.session_id
        mark = self._mark(sid, stamp)
        if stamp is not None and mark is not None and int(mark["e"]) > stamp.epoch:
            return Applied(ev, False, (), refused=FENCED)
        log_key, recs_key = k.session_log(sid), k.session_recs(sid)
        seen = d.sets.setdefault(k.session_seen(sid), set())
        duplicate = ev.event_id in seen
        if not duplicate:
            if stamp is not None and mark is not None and int(mark["o"]) >= stamp.offset:
                return Applied(ev, False, (), refused=OUT_OF_ORDER)
            seen.add(ev.event_id)
            log = d.lists.setdefault(log_key, [])
            log.append(encode_event(to_session_event(ev)))
            del log[: -self.max_events]
            if stamp is not None:
                d.hashes[k.session_position(sid)] = {
                    "p": partition_tag(stamp.topic, stamp.partition),
                    "e": str(stamp.epoch),
                    "o": str(stamp.offset),
                }
            for key in (log_key, k.session_seen(sid), recs_key, k.session_state(sid)):
                d.expire(key, ttl)
            d.expire(k.session_position(sid), ttl)
        records = tuple(d.lists.get(log_key, ()))
        stored = d.hashes.get(recs_key, {}).get(ev.event_id) if duplicate else None
        folded = fold_events(decode_event(r) for r in records)
        if not attribution:
            return Applied(ev, duplicate, records, folded, stored)
        state = d.strings.get(k.session_attribution(sid))
        outcome = d.hashes.get(k.session_outcomes(sid), {}).get(ev.event_id)
        return Applied(ev, duplicate, records, folded, stored, None, None, state, outcome)

    async def write_results(
        self,
        states: Mapping[str, SessionState],
        lists: Sequence[StoredList],
        activity: Mapping[str, tuple[str, int]],
        stamps: Mapping[str, Stamp] | None = None,
        attribution: Sequence[AttributionSave] = (),
    ) -> list[str]:
        d, k, ttl = self.data, self.keys, self.ttl_seconds
        d.expire_due()
        for sid, state in states.items():
            stamp = (stamps or {}).get(sid)
            mark = self._mark(sid, stamp)
            if mark is not None and stamp is not None and self._behind(mark, stamp):
                continue  # a newer owner's event is applied: its state stays
            d.set_string(k.session_state(sid), json.dumps(state_summary(state)), ttl)
        stored = []
        for item in lists:  # HSETNX: the first list stored for a trigger stays
            recs = d.hashes.setdefault(k.session_recs(item.session_id), {})
            stored.append(recs.setdefault(item.trigger_event_id, item.message_json))
        for sid in {item.session_id for item in lists}:
            d.expire(k.session_recs(sid), ttl)
        pairs = zip(lists, stored, strict=True)
        elsewhere = {item.session_id for item, body in pairs if body != item.message_json}
        for save in attribution:
            if save.session_id not in elsewhere:  # folded with the lists stored: save it
                self._save_attribution(save)
        for item in lists:
            if item.update_latest:
                d.set_string(k.user_latest(item.user_id), item.message_json, ttl)
        for uid, (sid, _) in activity.items():
            d.set_string(k.user_session(uid), sid, ttl)
        if activity:
            index = d.zsets.setdefault(k.active_users(), {})
            index.update({uid: float(ts) for uid, (_, ts) in activity.items()})
            for uid in sorted(index, key=lambda u: (index[u], u))[:-ACTIVE_USERS_KEPT]:
                del index[uid]
        return stored

    def _save_attribution(self, save: AttributionSave) -> None:
        d, k, ttl = self.data, self.keys, self.ttl_seconds
        current = d.strings.get(k.session_attribution(save.session_id))
        if current is not None:
            mark = json.loads(current)
            if mark["tag"] == save.tag and int(mark["offset"]) >= save.offset:
                return  # as far along the same partition or further: kept
        d.set_string(k.session_attribution(save.session_id), save.state_json, ttl)
        outcomes = k.session_outcomes(save.session_id)
        for eid, body in save.emitted.items():
            d.hashes.setdefault(outcomes, {}).setdefault(eid, body)
        if save.emitted:
            d.expire(outcomes, ttl)

    # --- FeatureReader --------------------------------------------------------------------

    async def latest_recommendations(self, user_id: str) -> RecommendationMessage | None:
        raw = self._string(self.keys.user_latest(user_id))
        return None if raw is None else RecommendationMessage.model_validate_json(raw)

    async def session_features(self, session_id: str) -> dict[str, object] | None:
        raw = self._string(self.keys.session_state(session_id))
        if raw is None:
            return None
        value: dict[str, object] = json.loads(raw)
        return value

    async def session_events(self, session_id: str, last: int | None = None) -> list[SessionEvent]:
        self.data.expire_due()
        records = self.data.lists.get(self.keys.session_log(session_id), [])
        return [decode_event(r) for r in (records if last is None else records[-last:])]

    async def user_session(self, user_id: str) -> str | None:
        return self._string(self.keys.user_session(user_id))

    async def active_users(self, limit: int = 50) -> list[str]:
        self.data.expire_due()
        index = self.data.zsets.get(self.keys.active_users(), {})
        return sorted(index, key=lambda u: (index[u], u), reverse=True)[:limit]

    def _string(self, key: str) -> str | None:
        self.data.expire_due()
        return self.data.strings.get(key)


class FakeRanker:
    """Deterministic lists: the first k tracks of a fixed catalogue not played yet."""

    def __init__(self, fail_on: str | None = None, model_version: str = "test-model") -> None:
        self.model_version = model_version
        self.calls: list[list[SessionState]] = []
        self.fail_on = fail_on

    def recommend(self, states: Sequence[SessionState], k: int) -> list[list[Recommendation]]:
        self.calls.append(list(states))
        out = []
        for state in states:
            if self.fail_on is not None and state.current_track == self.fail_on:
                raise ValueError("cannot rank")
            tracks = [f"t{i}" for i in range(50) if f"t{i}" not in state.played][:k]
            out.append(
                [
                    Recommendation(track_id=t, score=1.0 - r / 100, rank=r + 1, source="model")
                    for r, t in enumerate(tracks)
                ]
            )
        return out


class FakePublisher:
    """Records every sent record; the first ``fail_times`` sends are never acknowledged
    (their acknowledgement fails, as when the broker is unavailable)."""

    def __init__(self, fail_times: int = 0) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.fail_times = fail_times

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_times:
            self.fail_times -= 1
            fut.set_exception(ConnectionError("broker unavailable"))
        else:
            self.records.append((topic, key, value))
            fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.records if t == topic]


# --- sensors: the pipeline's instrumentation hooks ----------------------------------------------


class RecordingSensor:
    """A :class:`streams.instrumentation.PipelineSensor` that records every hook call, in order,
    as ``(hook name without "on_", arguments...)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def of(self, hook: str) -> list[tuple[object, ...]]:
        """The arguments of every call of ``hook`` (e.g. ``"dead_letter"``), in order."""
        return [call[1:] for call in self.calls if call[0] == hook]

    def on_batch(self, size: int) -> None:
        self.calls.append(("batch", size))

    def on_event_applied(self, event: InputEvent, duplicate: bool, variant: str | None) -> None:
        self.calls.append(("event_applied", event.event_id, duplicate, variant))

    def on_dead_letter(self, reason: str) -> None:
        self.calls.append(("dead_letter", reason))

    def on_list_published(
        self, source: str, variant: str | None, latency_seconds: float | None
    ) -> None:
        self.calls.append(("list_published", source, variant, latency_seconds))

    def on_retry(self, dependency: str) -> None:
        self.calls.append(("retry", dependency))

    def on_dependency_up(self, dependency: str, up: bool) -> None:
        self.calls.append(("dependency_up", dependency, up))

    def on_redis_roundtrip(self, operation: str, seconds: float) -> None:
        self.calls.append(("redis_roundtrip", operation, seconds))

    def on_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.calls.append(("consumer_lag", topic, partition, lag))

    def on_offset_gap(self, topic: str, partition: int, expected: int, offset: int) -> None:
        self.calls.append(("offset_gap", topic, partition, expected, offset))

    def on_fenced_batch(self, topic: str, partition: int) -> None:
        self.calls.append(("fenced_batch", topic, partition))

    def on_exposure(self, variant: str | None, model_version: str) -> None:
        self.calls.append(("exposure", variant, model_version))

    def on_outcome(self, outcome: OutcomeMessage) -> None:
        self.calls.append(("outcome", outcome.exposure_id, outcome.hit, outcome.outcome))
