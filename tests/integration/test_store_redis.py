"""The Redis back-ends where only Redis can show it, on the real server: the single-server batch
scripts against the per-event/per-session calls (the cluster back-end's, here on the same
server) with the same replies, keys, values and TTLs, keys of the wrong type failing their own
events only, and the scripts loaded again after the server lost them. What every back-end
promises is in tests/contract/test_feature_store_contract.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from features.store import Applied, RedisClusterStore, RedisSingleStore, StoredList
from features.store.base import as_text
from features.store.redis_common import RedisStore
from nowplaying.clients import AsyncRedisClient
from nowplaying.events import PlayEvent
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.services import RedisServer
from tests.support.settings import isolated_settings
from tests.support.store import TS, end, list_message, plays, run_with_store, start

T = TypeVar("T")


def run_both(
    settings_factory: SettingsFactory,
    body: Callable[[RedisStore, AsyncRedisClient, Keys], Awaitable[T]],
    **overrides: Any,
) -> tuple[tuple[T, dict[str, Any]], tuple[T, dict[str, Any]]]:
    """Run ``body`` through the batch scripts and through the per-event commands, each under
    its own key prefix; returns each run's result and its keys' contents (prefix removed)."""

    def one(settings: Settings, batch: bool) -> tuple[T, dict[str, Any]]:
        async def run(store: RedisStore, redis: AsyncRedisClient) -> tuple[T, dict[str, Any]]:
            assert isinstance(store, RedisSingleStore if batch else RedisClusterStore)
            result = await body(store, redis, Keys(settings.redis_key_prefix))
            return result, await dump(redis, settings.redis_key_prefix)

        return run_with_store(settings, run, per_event=not batch)

    batch = one(settings_factory(create_topics=False, **overrides), True)
    single = one(settings_factory(create_topics=False, **overrides), False)
    return batch, single


async def dump(redis: AsyncRedisClient, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix``: its type, its value, and whether it expires (TTL > 0)."""
    out: dict[str, Any] = {}
    async for raw in redis.scan_iter(match=f"{prefix}:*", count=1000):
        key = as_text(raw)
        kind = as_text(await redis.type(key))
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        else:  # pragma: no cover - the store writes no other types
            raise AssertionError(kind)
        out[key[len(prefix) :]] = (kind, value, await redis.ttl(key) > 0)
    return out


def comparable(applied: list[Applied]) -> list[tuple[Any, ...]]:
    """What an Applied says, the error reduced to its class (the message names the script)."""
    return [
        (
            a.event.event_id,
            a.duplicate,
            a.records,
            a.folded,
            a.stored_list,
            None if a.error is None else a.error.split()[0],
        )
        for a in applied
    ]


def test_a_mixed_batch_applies_as_the_per_event_calls_do(
    settings_factory: SettingsFactory,
) -> None:
    """Two events of one session see each other; a redelivery returns its stored list; keys of
    the wrong type fail their own events only (a log of the wrong type after the dedupe set
    took the id, as a separate call leaves it); the held prefix still comes back whole."""
    early = start("s1", 0)
    stored_json = list_message(early, 7)

    async def body(store: RedisStore, redis: AsyncRedisClient, keys: Keys) -> list[list[Applied]]:
        await redis.set(keys.session_seen("bad-seen"), "not a set")
        await redis.set(keys.session_log("bad-log"), "not a list")
        first = await store.apply_events([early, end("s1", 0)])
        await store.write_results(
            {"s1": first[-1].state()},
            [StoredList("u1", "s1", early.event_id, stored_json)],
            {"u1": ("s1", early.ts)},
        )
        batch: list[PlayEvent] = [
            start("s1", 1),
            start("bad-seen", 0, "u2"),
            early,  # a redelivery
            end("s1", 1),
            start("bad-log", 0, "u3"),
            start("s2", 0, "u4"),
            end("s2", 0, "u4"),
            end("s1", 1),  # a redelivery of an event of this very batch
            start("s1", 2),
        ]
        second = await store.apply_events(batch)
        third = await store.apply_events([start("s2", 1, "u4"), end("bad-log", 0, "u3")])
        return [first, second, third]

    (batch, batch_keys), (single, single_keys) = run_both(settings_factory, body)
    for b, s in zip(batch, single, strict=True):
        assert comparable(b) == comparable(s)
    assert batch_keys == single_keys
    second = batch[1]
    assert [a.duplicate for a in second] == [False, False, True, False, False] + [False] * 2 + [
        True,
        False,
    ]
    assert [a.error is not None for a in second] == [False, True, False, False, True] + [False] * 4
    assert second[2].stored_list == stored_json
    assert [len(a.records) for a in second if a.event.session_id == "s1"] == [3, 3, 4, 4, 5]
    # the wrong-type events failed without stopping the next events of their batch
    refused = (second[1], second[4], batch[2][1])
    assert all(a.error is not None and a.error.startswith("WRONGTYPE") for a in refused)
    assert len(batch[2][0].records) == 3
    # every session and user key expires (the broken keys were set by the test without one)
    no_ttl = [k for k, (_, _, ttl) in batch_keys.items() if not ttl and "bad-" not in k]
    assert no_ttl == [":active-users"]
    assert batch_keys[":s:{bad-log}:seen"][1] == [b"bad-log-0-e", b"bad-log-0-s"]


def test_a_trimmed_log_in_one_batch_matches_the_per_event_calls(
    settings_factory: SettingsFactory,
) -> None:
    evs = plays("s1", 5)

    async def body(store: RedisStore, redis: AsyncRedisClient, keys: Keys) -> list[list[Applied]]:
        return [
            await store.apply_events(evs[:3]),
            await store.apply_events(evs),
            await store.apply_events(evs[:1] + evs[-1:]),
        ]

    (batch, batch_keys), (single, single_keys) = run_both(
        settings_factory, body, max_session_events=4
    )
    for b, s in zip(batch, single, strict=True):
        assert comparable(b) == comparable(s)
    assert batch_keys == single_keys
    assert [len(a.records) for a in batch[1]] == [3, 3, 3, 4, 4, 4, 4, 4, 4, 4]


def test_the_write_batch_stores_and_keeps_lists_as_the_per_session_calls_do(
    settings_factory: SettingsFactory,
) -> None:
    a0, a1, b0 = start("sa", 0, "ua"), start("sa", 1, "ua"), start("sb", 0, "ub")

    async def body(store: RedisStore, redis: AsyncRedisClient, keys: Keys) -> list[list[str]]:
        applied = await store.apply_events([a0, a1, b0, start("sc", 0, "uc")])
        states = {a.event.session_id: a.state() for a in applied}
        activity = {a.event.user_id: (a.event.session_id, a.event.ts) for a in applied}
        first = await store.write_results(
            states,
            [
                StoredList("ua", "sa", a0.event_id, list_message(a0, 1), update_latest=False),
                StoredList("ua", "sa", a1.event_id, list_message(a1, 1)),
                StoredList("ub", "sb", b0.event_id, list_message(b0, 1)),
            ],
            activity,
        )
        again = await store.write_results(  # a redelivery's lists, computed again
            {"sa": states["sa"]},
            [
                StoredList("ua", "sa", a1.event_id, list_message(a1, 2)),
                StoredList("ua", "sa", a1.event_id, list_message(a1, 3)),  # twice in one batch
                StoredList("ub", "sb", b0.event_id, list_message(b0, 2), update_latest=False),
                StoredList("ub", "sb", "sb-9-s", list_message(b0, 2)),  # a new trigger
            ],
            {"ua": ("sa", a1.ts + 10)},
        )
        nothing = await store.write_results({}, [], {})
        return [first, again, nothing]

    (batch, batch_keys), (single, single_keys) = run_both(settings_factory, body)
    assert batch == single
    assert batch_keys == single_keys
    assert batch[1] == [
        list_message(a1, 1),
        list_message(a1, 1),
        list_message(b0, 1),
        list_message(b0, 2),
    ]
    assert batch_keys[":u:{ua}:latest"][1] == list_message(a1, 3).encode()  # the last one given
    assert batch_keys[":active-users"][1] == [
        (b"ub", float(b0.ts)),
        (b"uc", float(TS)),
        (b"ua", float(a1.ts + 10)),
    ]
    assert ":s:{sc}:recs" not in batch_keys and batch_keys[":s:{sc}:state"][2]
    assert all(ttl for key, (_, _, ttl) in batch_keys.items() if key != ":active-users")


@pytest.mark.parametrize("per_event", [False, True], ids=["batch-scripts", "per-event"])
def test_the_scripts_are_reloaded_after_the_server_lost_them(
    private_redis: Callable[..., RedisServer], per_event: bool
) -> None:
    server = private_redis()
    settings = isolated_settings(redis_url=server.url, redis_key_prefix="p")
    evs: list[PlayEvent] = [start("s1", 0), end("s1", 0), start("s1", 1)]
    trigger = start("s1", 0)

    async def body(
        store: RedisStore, redis: AsyncRedisClient
    ) -> tuple[list[Applied], list[Applied], list[str], Any]:
        assert isinstance(store, RedisClusterStore if per_event else RedisSingleStore)
        first = await store.apply_events(evs[:2])
        await redis.script_flush()
        applied = await store.apply_events(evs)
        await redis.script_flush()
        stored = await store.write_results(
            {"s1": applied[-1].state()},
            [StoredList("u1", "s1", trigger.event_id, list_message(trigger, 1))],
            {"u1": ("s1", TS)},
        )
        return first, applied, stored, await redis.get(Keys("p").user_session("u1"))

    first, applied, stored, session = run_with_store(settings, body, per_event=per_event)
    assert [a.duplicate for a in first] == [False, False]
    assert [a.duplicate for a in applied] == [True, True, False]
    assert [len(a.records) for a in applied] == [2, 2, 3]
    assert stored == [list_message(trigger, 1)] and session == b"s1"
