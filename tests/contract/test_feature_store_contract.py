"""The feature store's contract (:mod:`features.store.base`), one suite for every back-end: the
in-memory double, the single-server Redis back-end and the Redis Cluster back-end.

Each test runs on each back-end (the ``on_backend`` fixture) and sees it only through the
contract: the store, a reader of the same data, another worker's store, key TTLs and time
passing. What only Redis can show (keys of the wrong type, a lost script cache, the batch
scripts leaving the same keys as the per-event calls) is in tests/integration/test_store_redis.py.
"""

from __future__ import annotations

import json
from typing import Any

from features.session import (
    SessionEvent,
    encode_event,
    fold_events,
    state_summary,
    to_session_event,
)
from features.store import ACTIVE_USERS_KEPT, Applied, StoredList
from nowplaying.events import PlayEvent, TrackStart
from tests.contract.conftest import OnBackend
from tests.support.store import TS, end, list_message, plays, start
from tests.support.store_backends import Backend


def offline(events: list[PlayEvent]) -> list[SessionEvent]:
    return [to_session_event(e) for e in events]


def records(events: list[PlayEvent]) -> tuple[str, ...]:
    return tuple(encode_event(e) for e in offline(events))


def test_events_apply_once_in_order_and_each_answer_holds_the_log_right_after_it(
    on_backend: OnBackend,
) -> None:
    evs = plays("s1", 3)

    async def body(b: Backend) -> tuple[list[Applied], list[Applied], list[SessionEvent]]:
        assert await b.store.apply_events([]) == []
        first = await b.store.apply_events(evs)
        again = await b.store.apply_events(evs[::-1])  # a redelivery, in any order
        return first, again, await b.reader.session_events("s1")

    first, again, stored = on_backend(body)
    assert [a.duplicate for a in first] == [False] * 6
    assert [a.error for a in first + again] == [None] * 12
    assert [a.records for a in first] == [records(evs[: i + 1]) for i in range(6)]
    assert [a.state() for a in first] == [fold_events(offline(evs[: i + 1])) for i in range(6)]
    assert all(a.duplicate and a.stored_list is None for a in again)
    assert all(a.records == records(evs) for a in again)  # a duplicate sees the whole log
    assert again[0].state() == fold_events(offline(evs))
    # ... and the state right after itself: the log up to its own record
    assert again[-1].state_after_event() == fold_events(offline(evs[:1]))
    assert stored == offline(evs)


def test_events_of_one_batch_see_each_other_and_a_copy_in_the_batch_is_a_duplicate(
    on_backend: OnBackend,
) -> None:
    a0, a0_end, a1 = start("sa", 0), end("sa", 0), start("sa", 1)
    b0, b0_end = start("sb", 0, "ub"), end("sb", 0, "ub")
    batch: list[PlayEvent] = [a0, b0, a0_end, a0_end, b0_end, a1, b0]

    async def body(b: Backend) -> list[Applied]:
        return await b.store.apply_events(batch)

    applied = on_backend(body)
    assert [a.duplicate for a in applied] == [False, False, False, True, False, False, True]
    assert [a.records for a in applied] == [
        records([a0]),
        records([b0]),
        records([a0, a0_end]),
        records([a0, a0_end]),
        records([b0, b0_end]),
        records([a0, a0_end, a1]),
        records([b0, b0_end]),
    ]
    assert applied[5].state() == fold_events(offline([a0, a0_end, a1]))


def test_the_log_keeps_the_last_max_events_and_dedupe_outlives_the_trim(
    on_backend: OnBackend,
) -> None:
    evs = plays("s1", 4)  # 8 events, 4 kept

    async def body(b: Backend) -> tuple[list[list[Applied]], list[SessionEvent]]:
        answers = [
            await b.store.apply_events(evs[:3]),
            await b.store.apply_events(evs),
            await b.store.apply_events([evs[0], evs[-1]]),
        ]
        return answers, await b.reader.session_events("s1")

    (first, whole, again), stored = on_backend(body, max_session_events=4)
    assert [len(a.records) for a in first] == [1, 2, 3]
    assert [len(a.records) for a in whole] == [3, 3, 3, 4, 4, 4, 4, 4]
    assert [a.duplicate for a in whole] == [True] * 3 + [False] * 5
    assert whole[-1].records == records(evs[-4:])  # the oldest records dropped
    assert whole[-1].state() == fold_events(offline(evs[-4:]))
    assert [a.duplicate for a in again] == [True, True]
    assert again[0].state_after_event() is None  # its record was trimmed away
    assert again[1].state_after_event() == whole[-1].state()
    assert stored == offline(evs[-4:])


def test_a_list_is_stored_once_per_trigger_and_a_redelivery_gets_the_stored_one(
    on_backend: OnBackend,
) -> None:
    a0, a1, b0 = start("sa", 0, "ua"), start("sa", 1, "ua"), start("sb", 0, "ub")

    async def body(b: Backend) -> tuple[list[list[str]], list[Applied], list[Any]]:
        applied = await b.store.apply_events([a0, a1, b0, start("sc", 0, "uc")])
        states = {a.event.session_id: a.state() for a in applied}
        activity = {a.event.user_id: (a.event.session_id, a.event.ts) for a in applied}
        first = await b.store.write_results(
            states,
            [
                StoredList("ua", "sa", a0.event_id, list_message(a0, 1), update_latest=False),
                StoredList("ua", "sa", a1.event_id, list_message(a1, 1)),
                StoredList("ub", "sb", b0.event_id, list_message(b0, 1)),
            ],
            activity,
        )
        again = await b.store.write_results(  # a redelivery's lists, computed again
            {"sa": states["sa"]},
            [
                StoredList("ua", "sa", a1.event_id, list_message(a1, 2)),
                StoredList("ua", "sa", a1.event_id, list_message(a1, 3)),  # twice in one batch
                StoredList("ub", "sb", b0.event_id, list_message(b0, 2), update_latest=False),
                StoredList("ub", "sb", "sb-9-s", list_message(b0, 2)),  # a new trigger
            ],
            {"ua": ("sa", a1.ts + 10)},
        )
        nothing = await b.store.write_results({}, [], {})
        redelivered = await b.store.apply_events([a0, a1, b0])
        latest = [await b.reader.latest_recommendations(u) for u in ("ua", "ub", "uc")]
        return [first, again, nothing], redelivered, latest

    (first, again, nothing), redelivered, latest = on_backend(body)
    assert first == [list_message(a0, 1), list_message(a1, 1), list_message(b0, 1)]
    assert again == [
        list_message(a1, 1),
        list_message(a1, 1),
        list_message(b0, 1),
        list_message(b0, 2),
    ]
    assert nothing == []
    # what a redelivered start republishes: the list stored for it
    assert [a.stored_list for a in redelivered] == first
    assert all(a.duplicate for a in redelivered)
    # a user's latest list is the last one given to be the latest (even if not stored)
    assert [m.model_dump_json() if m else None for m in latest] == [
        list_message(a1, 3),
        list_message(b0, 2),
        None,
    ]


def test_states_and_user_pointers_read_back_as_written(on_backend: OnBackend) -> None:
    evs = plays("s1", 2)
    elsewhere = start("s2", 0)

    async def body(b: Backend) -> list[Any]:
        applied = await b.store.apply_events(evs)
        await b.store.write_results(
            {"s1": applied[-1].state()},
            [StoredList("u1", "s2", elsewhere.event_id, list_message(elsewhere, 1))],
            {"u1": ("s1", evs[-1].ts)},
        )
        r = b.reader
        return [
            await r.session_features("s1"),
            await r.session_features("s2"),  # a list but no state given: no state stored
            await r.user_session("u1"),
            await r.active_users(),
            await r.session_events("s1", last=3),
            [
                await r.session_features("nope"),
                await r.user_session("nobody"),
                await r.latest_recommendations("nobody"),
                await r.session_events("nope"),
            ],
        ]

    features, no_state, session, users, tail, unknown = on_backend(body)
    assert features == json.loads(json.dumps(state_summary(fold_events(offline(evs)))))
    assert no_state is None
    assert session == "s1" and users == ["u1"]
    assert tail == offline(evs[-3:])
    assert unknown == [None, None, None, []]


def test_active_users_keep_the_most_recent(on_backend: OnBackend) -> None:
    n = ACTIVE_USERS_KEPT + 5
    activity = {f"u{i}": (f"s{i}", TS + i) for i in range(n)}

    async def body(b: Backend) -> tuple[list[str], list[str]]:
        await b.store.write_results({}, [], activity)
        return await b.reader.active_users(n), await b.reader.active_users(3)

    kept, top = on_backend(body)
    assert kept == [f"u{i}" for i in range(n - 1, 4, -1)]  # the 5 least recent are gone
    assert top == [f"u{n - 1}", f"u{n - 2}", f"u{n - 3}"]


def test_keys_live_for_the_ttl_and_activity_refreshes_it(on_backend: OnBackend) -> None:
    evs = plays("s1", 1)
    trigger = evs[0]
    assert isinstance(trigger, TrackStart)

    async def body(b: Backend) -> list[Any]:
        k = b.keys
        session_keys = [
            k.session_log("s1"),
            k.session_seen("s1"),
            k.session_state("s1"),
            k.session_recs("s1"),
        ]
        user_keys = [k.user_latest("u1"), k.user_session("u1")]

        async def ttls(names: list[str]) -> list[int]:
            return [await b.ttl(name) for name in names]

        applied = await b.store.apply_events(evs)
        await b.store.write_results(
            {"s1": applied[-1].state()},
            [StoredList("u1", "s1", trigger.event_id, list_message(trigger, 1))],
            {"u1": ("s1", evs[-1].ts)},
        )
        fresh = await ttls(session_keys + user_keys) + [await b.ttl(k.active_users())]
        await b.age(100)
        aged = await ttls(session_keys + user_keys)
        later = start("s1", 1)  # a new event refreshes the session; the results its user
        await b.store.apply_events([later])
        refreshed = await ttls(session_keys + user_keys)
        await b.store.write_results({}, [], {"u1": ("s1", later.ts)})
        user_refreshed = await ttls(user_keys)
        await b.age(30)  # the latest list, last stored 130 s ago, is gone
        partly = [
            await b.reader.latest_recommendations("u1"),
            await b.reader.user_session("u1"),
            len(await b.reader.session_events("s1")),
        ]
        await b.age(120)  # everything that expires is gone
        gone = [
            await ttls(session_keys + user_keys),
            await b.reader.session_events("s1"),
            await b.reader.session_features("s1"),
            await b.reader.user_session("u1"),
        ]
        restarted = await b.store.apply_events(evs)  # the session starts again
        return [fresh, aged, refreshed, user_refreshed, partly, gone, restarted]

    fresh, aged, refreshed, user_refreshed, partly, gone, restarted = on_backend(
        body, session_ttl_seconds=120
    )
    assert all(110 <= t <= 120 for t in fresh[:-1]), fresh
    assert fresh[-1] == -1  # the active-users index does not expire
    assert all(10 <= t <= 20 for t in aged), aged
    assert all(110 <= t <= 120 for t in refreshed[:4]), refreshed
    assert all(10 <= t <= 20 for t in refreshed[4:]), refreshed
    assert all(110 <= t <= 120 for t in user_refreshed[1:]), user_refreshed
    assert 10 <= user_refreshed[0] <= 20, user_refreshed
    assert partly == [None, "s1", 3]
    assert gone == [[-2] * 6, [], None, None]
    assert [a.duplicate for a in restarted] == [False, False]
    assert restarted[-1].records == records(evs)


def test_a_log_stays_exact_across_workers_and_expiry(on_backend: OnBackend) -> None:
    """A log another worker extended, or one that expired and started again, comes back
    whole to every worker and folds to the offline state."""
    evs = plays("s1", 5)

    async def body(b: Backend) -> tuple[Applied, Applied, Applied]:
        one, other = b.store, b.another_worker()
        await one.apply_events(evs[:3])
        await other.apply_events(evs[3:5])  # the partition moved to another worker and back
        after_move = (await one.apply_events(evs[5:6]))[0]
        await b.age(b.settings.session_ttl_seconds + 1)  # the session expired
        restarted = (await one.apply_events(evs[6:8]))[-1]
        late_other = (await other.apply_events(evs[8:10]))[-1]
        return after_move, restarted, late_other

    after_move, restarted, late_other = on_backend(body)
    assert after_move.records == records(evs[:6])
    assert after_move.state() == fold_events(offline(evs[:6]))
    assert restarted.records == records(evs[6:8])
    assert restarted.state() == fold_events(offline(evs[6:8]))
    assert late_other.records == records(evs[6:10])
    assert late_other.state() == fold_events(offline(evs[6:10]))
