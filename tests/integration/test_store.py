"""The feature store's write path against the real Redis server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from features.session import encode_event, fold_events, state_summary, to_session_event
from features.store import (
    ACTIVE_USERS_KEPT,
    Applied,
    RedisFeatureReader,
    StoredList,
    feature_store_for,
)
from features.store.redis_common import RedisStore
from nowplaying.clients import redis_client
from nowplaying.events import TrackEnd, TrackStart
from nowplaying.keys import Keys
from tests.conftest import SettingsFactory
from tests.support.services import RedisServer
from tests.support.settings import isolated_settings
from tests.support.store import list_message, run_with_store

TS = 1_795_800_000_000


def events(session: str = "s1", user: str = "u1", n: int = 3) -> list[TrackStart | TrackEnd]:
    out: list[TrackStart | TrackEnd] = []
    for i in range(n):
        common: dict[str, Any] = {"user_id": user, "session_id": session, "track_id": f"t{i}"}
        out.append(
            TrackStart(event_type="track_start", event_id=f"{session}-{i}-s", ts=TS + i, **common)
        )
        out.append(
            TrackEnd(
                event_type="track_end",
                event_id=f"{session}-{i}-e",
                ts=TS + i,
                skipped=i % 2 == 0,
                **common,
            )
        )
    return out


def test_events_are_applied_once_and_the_log_folds_to_the_offline_state(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(create_topics=False)
    evs = events()

    async def body(store: RedisStore, redis: Any) -> tuple[list[Applied], list[Applied], Any]:
        first = await store.apply_events(evs)
        again = await store.apply_events(evs[::-1])
        stored = await RedisFeatureReader(redis, Keys(settings.redis_key_prefix)).session_events(
            "s1"
        )
        return first, again, stored

    first, again, stored = run_with_store(settings, body)
    assert [a.duplicate for a in first] == [False] * 6
    assert [len(a.records) for a in first] == [1, 2, 3, 4, 5, 6]  # the log right after each
    assert all(a.duplicate and a.stored_list is None for a in again)
    offline = [to_session_event(e) for e in evs]
    assert stored == offline
    assert first[-1].state() == fold_events(offline)
    assert again[0].state() == fold_events(offline)  # a duplicate sees the whole log
    # ... and the state right after itself: the log up to its own record
    assert again[-1].state_after_event() == fold_events(offline[:1])


def test_session_keys_expire_after_the_inactivity_ttl(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(create_topics=False, session_ttl_seconds=120)
    keys = Keys(settings.redis_key_prefix)
    evs = events(n=1)

    async def body(store: RedisStore, redis: Any) -> list[int]:
        applied = await store.apply_events(evs)
        await store.write_results(
            {"s1": applied[-1].state()},
            [StoredList("u1", "s1", evs[0].event_id, list_message(evs[0], 1))],  # type: ignore[arg-type]
            {"u1": ("s1", evs[-1].ts)},
        )
        names = [
            keys.session_log("s1"),
            keys.session_seen("s1"),
            keys.session_state("s1"),
            keys.session_recs("s1"),
            keys.user_latest("u1"),
            keys.user_session("u1"),
        ]
        return [await redis.ttl(k) for k in names]

    ttls = run_with_store(settings, body)
    assert all(110 <= t <= 120 for t in ttls), ttls


def test_the_log_is_trimmed_but_dedupe_still_holds(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(create_topics=False, max_session_events=4)
    evs = events(n=4)

    async def body(store: RedisStore, redis: Any) -> tuple[list[Applied], list[Applied]]:
        return await store.apply_events(evs), await store.apply_events(evs[:2])

    first, again = run_with_store(settings, body)
    assert [len(a.records) for a in first] == [1, 2, 3, 4, 4, 4, 4, 4]
    assert first[-1].records[0] == first[4].records[-1]  # oldest records dropped
    assert all(a.duplicate for a in again)
    assert again[0].state_after_event() is None  # its record was trimmed away


def test_a_stored_list_is_never_replaced_and_results_are_readable(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(create_topics=False)
    keys = Keys(settings.redis_key_prefix)
    evs = events(n=1)
    start = evs[0]
    assert isinstance(start, TrackStart)
    first_json, second_json = list_message(start, 1), list_message(start, 2)

    async def body(store: RedisStore, redis: Any) -> Any:
        applied = await store.apply_events(evs)
        state = {"s1": applied[-1].state()}
        activity = {"u1": ("s1", evs[-1].ts)}
        a = await store.write_results(
            state, [StoredList("u1", "s1", start.event_id, first_json)], activity
        )
        b = await store.write_results(
            state,
            [StoredList("u1", "s1", start.event_id, second_json, update_latest=False)],
            activity,
        )
        dup = await store.apply_events(evs)
        return (
            a,
            b,
            dup,
            await RedisFeatureReader(redis, keys).latest_recommendations("u1"),
            await RedisFeatureReader(redis, keys).session_features("s1"),
            await RedisFeatureReader(redis, keys).user_session("u1"),
            await RedisFeatureReader(redis, keys).active_users(),
        )

    a, b, dup, latest, features, session, users = run_with_store(settings, body)
    assert a == [first_json] and b == [first_json]
    assert dup[0].duplicate and dup[0].stored_list == first_json  # what a redelivery republishes
    assert latest is not None and latest.generated_at == 1
    assert features == json.loads(
        json.dumps(state_summary(fold_events(map(to_session_event, evs))))
    )
    assert session == "s1" and users == ["u1"]


def test_active_users_keep_the_most_recent(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(create_topics=False)
    keys = Keys(settings.redis_key_prefix)
    n = ACTIVE_USERS_KEPT + 5
    activity = {f"u{i}": (f"s{i}", TS + i) for i in range(n)}

    async def body(store: RedisStore, redis: Any) -> tuple[int, list[str]]:
        await store.write_results({}, [], activity)
        return await redis.zcard(keys.active_users()), await RedisFeatureReader(
            redis, keys
        ).active_users(3)

    count, top = run_with_store(settings, body)
    assert count == ACTIVE_USERS_KEPT
    assert top == [f"u{n - 1}", f"u{n - 2}", f"u{n - 3}"]


def test_a_key_of_the_wrong_type_fails_that_event_only(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(create_topics=False)
    keys = Keys(settings.redis_key_prefix)
    good, bad = events("ok", n=1), events("broken", n=1)
    client = redis_client(settings)
    client.set(keys.session_seen("broken"), "not a set")
    client.close()

    async def body(store: RedisStore, redis: Any) -> list[Applied]:
        return await store.apply_events([*bad, *good])

    applied = run_with_store(settings, body)
    assert [a.error is not None for a in applied] == [True, True, False, False]
    assert applied[0].error is not None and "WRONGTYPE" in applied[0].error
    assert len(applied[-1].records) == 2


def test_the_script_is_reloaded_after_the_server_lost_it(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis()
    settings = isolated_settings(redis_url=server.url, redis_key_prefix="p")
    evs = events(n=2)

    async def body(store: RedisStore, redis: Any) -> tuple[list[Applied], list[Applied]]:
        first = await store.apply_events(evs[:2])
        await redis.script_flush()
        return first, await store.apply_events(evs)

    first, after = run_with_store(settings, body)
    assert [a.duplicate for a in first] == [False, False]
    assert [a.duplicate for a in after] == [True, True, False, False]
    assert len(after[-1].records) == 4


def test_cached_logs_stay_exact_across_workers_and_expiry(
    settings_factory: SettingsFactory,
) -> None:
    """Each store sends only what it has not seen; a log another worker extended, or one that
    expired and started again, must still come back whole and fold to the offline state."""
    settings = settings_factory(create_topics=False)
    keys = Keys(settings.redis_key_prefix)
    evs = events(n=5)

    def new_store(redis: Any) -> RedisStore:
        return feature_store_for(settings, redis)

    async def body(a: RedisStore, redis: Any) -> tuple[Applied, Applied, Applied]:
        b = new_store(redis)
        await a.apply_events(evs[:3])
        await b.apply_events(evs[3:5])  # the partition moved to another worker and back
        after_move = (await a.apply_events(evs[5:6]))[0]
        await redis.delete(keys.session_log("s1"), keys.session_seen("s1"))  # expired
        restarted = (await a.apply_events(evs[6:8]))[-1]
        late_b = (await b.apply_events(evs[8:10]))[-1]
        return after_move, restarted, late_b

    after_move, restarted, late_b = run_with_store(settings, body)
    offline = [to_session_event(e) for e in evs]
    assert after_move.records == tuple(encode_event(e) for e in offline[:6])
    assert after_move.state() == fold_events(offline[:6])
    assert restarted.state() == fold_events(offline[6:8])
    assert late_b.records == tuple(encode_event(e) for e in offline[6:10])
    assert late_b.state() == fold_events(offline[6:10])
