"""The feature store's fence (:class:`features.store.Fencing`), on every back-end: an owner epoch
per input partition raised by each assignment, a watermark ``next`` that passes applied and
dead-lettered offsets, a stale owner's batch written nowhere, and a session that refuses a new
event older than the last one applied to it from the same partition.

Each test runs on the in-memory double, the single Redis server and the 3-master Redis Cluster
(see tests/contract/conftest.py), and sees the store only through its contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from features.session import SessionEvent, fold_events, state_summary, to_session_event
from features.store import FENCED, OUT_OF_ORDER, Applied, Claim, Fencing, Stamp
from nowplaying.events import PlayEvent
from tests.contract.conftest import OnBackend
from tests.support.store import plays
from tests.support.store_backends import Backend

TOPIC = "play-events"


def fencing(
    events: Sequence[PlayEvent], offsets: Sequence[int], epoch: int, end: int | None = None
) -> Fencing:
    """The batch ``events`` read at ``offsets`` of partition 0 by a writer at ``epoch``; the
    batch's offsets there end at ``end`` (default: after the last event's)."""
    stamps = [Stamp(TOPIC, 0, offset, epoch) for offset in offsets]
    assert len(stamps) == len(events)
    return Fencing(stamps, {(TOPIC, 0): (epoch, end if end is not None else offsets[-1] + 1)})


def offline(events: Sequence[PlayEvent]) -> list[SessionEvent]:
    return [to_session_event(e) for e in events]


def test_each_claim_raises_the_epoch_and_next_passes_applied_and_dead_lettered_offsets(
    on_backend: OnBackend,
) -> None:
    evs = plays("s1", 2)

    async def body(b: Backend) -> list[Claim]:
        claims = [(await b.store.claim_partitions([(TOPIC, 0), (TOPIC, 1)]))[(TOPIC, 0)]]
        epoch = claims[0].epoch
        # offsets 10, 11 are events; 12..14 dead letters of the same batch
        await b.store.apply_events(evs[:2], fencing(evs[:2], [10, 11], epoch, end=15))
        claims.append((await b.store.claim_partitions([(TOPIC, 0)]))[(TOPIC, 0)])
        epoch = claims[-1].epoch
        # a batch of redeliveries further back never moves next backwards
        await b.store.apply_events(evs[:1], fencing(evs[:1], [10], epoch))
        claims.append((await b.store.claim_partitions([(TOPIC, 0)]))[(TOPIC, 0)])
        # a batch of dead letters only (offsets 15..19) moves it on
        dead = Fencing([], {(TOPIC, 0): (claims[-1].epoch, 20)})
        assert await b.store.apply_events([], dead) == []
        claims.append((await b.store.claim_partitions([(TOPIC, 0)]))[(TOPIC, 0)])
        return claims

    first, second, third, fourth = on_backend(body)
    assert first == Claim(1, None)  # never claimed, nothing applied
    assert second == Claim(2, 15)
    assert third == Claim(3, 15)
    assert fourth == Claim(4, 20)


def test_after_a_new_owner_claims_the_partition_the_old_owners_batch_writes_nothing(
    on_backend: OnBackend,
) -> None:
    evs = plays("s1", 3)  # 6 events

    async def body(
        b: Backend,
    ) -> tuple[list[Applied], list[Applied], list[Applied], list[SessionEvent], Claim]:
        old = b.store
        new = b.another_worker()
        (a_epoch,) = (c.epoch for c in (await old.claim_partitions([(TOPIC, 0)])).values())
        applied_a = await old.apply_events(evs[:2], fencing(evs[:2], [0, 1], a_epoch))
        (b_epoch,) = (c.epoch for c in (await new.claim_partitions([(TOPIC, 0)])).values())
        applied_b = await new.apply_events(evs[:3], fencing(evs[:3], [0, 1, 2], b_epoch))
        # The old owner, paused until now, goes on with its next batch: fenced, all of it,
        # its duplicates and its new events alike; its state and lists are not stored.
        stale = await old.apply_events(evs[1:5], fencing(evs[1:5], [1, 2, 3, 4], a_epoch))
        await old.write_results(
            {"s1": fold_events(offline(evs[:5]))}, [], {}, {"s1": Stamp(TOPIC, 0, 4, a_epoch)}
        )
        log = await b.reader.session_events("s1")
        claim = (await new.claim_partitions([(TOPIC, 0)]))[(TOPIC, 0)]
        return applied_a, applied_b, stale, log, claim

    applied_a, applied_b, stale, log, claim = on_backend(body)
    assert [a.refused for a in applied_a + applied_b] == [None] * 5
    assert [a.duplicate for a in applied_b] == [True, True, False]
    assert [a.refused for a in stale] == [FENCED] * 4
    assert all(a.records == () and not a.duplicate for a in stale)
    assert log == offline(evs[:3])  # the new owner's, in offset order, each event once
    assert claim.next_offset == 3  # the stale batch did not move the watermark


def test_a_fenced_writer_does_not_overwrite_a_newer_owners_state(on_backend: OnBackend) -> None:
    evs = plays("s1", 2)

    async def body(b: Backend) -> dict[str, object] | None:
        old, new = b.store, b.another_worker()
        (a_epoch,) = (c.epoch for c in (await old.claim_partitions([(TOPIC, 0)])).values())
        await old.apply_events(evs[:1], fencing(evs[:1], [0], a_epoch))
        (b_epoch,) = (c.epoch for c in (await new.claim_partitions([(TOPIC, 0)])).values())
        await new.apply_events(evs[:3], fencing(evs[:3], [0, 1, 2], b_epoch))
        newest = {"s1": fold_events(offline(evs[:3]))}
        await new.write_results(newest, [], {}, {"s1": Stamp(TOPIC, 0, 2, b_epoch)})
        # the old owner's write of its batch (applied before the new owner came) is late
        late = {"s1": fold_events(offline(evs[:1]))}
        await old.write_results(late, [], {}, {"s1": Stamp(TOPIC, 0, 0, a_epoch)})
        return await b.reader.session_features("s1")

    stored = on_backend(body)
    assert stored == state_summary(fold_events(offline(evs[:3])))


def test_a_new_event_older_than_the_sessions_last_from_its_partition_is_refused(
    on_backend: OnBackend,
) -> None:
    evs = plays("s1", 2)  # 4 events

    async def body(b: Backend) -> tuple[list[Applied], list[Applied], list[SessionEvent]]:
        (epoch,) = (c.epoch for c in (await b.store.claim_partitions([(TOPIC, 0)])).values())
        # offsets 5 and 6 applied, skipping 3 and 4 (a writer with a hole in its input)
        first = await b.store.apply_events(
            [evs[0], evs[3]], fencing([evs[0], evs[3]], [3, 6], epoch)
        )
        late = await b.store.apply_events(
            [evs[1], evs[3], evs[2]], fencing([evs[1], evs[3], evs[2]], [4, 6, 7], epoch)
        )
        return first, late, await b.reader.session_events("s1")

    first, late, log = on_backend(body)
    assert [a.refused for a in first] == [None, None]
    assert late[0].refused == OUT_OF_ORDER and late[0].records == ()
    assert late[1].duplicate and late[1].refused is None  # a redelivery still answers
    assert late[2].refused is None and not late[2].duplicate  # offset 7 is after 6
    assert log == offline([evs[0], evs[3], evs[2]])


def test_events_without_fencing_are_applied_as_before_and_keep_no_watermark(
    on_backend: OnBackend,
) -> None:
    evs = plays("s1", 1)

    async def body(b: Backend) -> tuple[list[Applied], Claim]:
        applied = await b.store.apply_events(evs)
        return applied, (await b.store.claim_partitions([(TOPIC, 0)]))[(TOPIC, 0)]

    applied, claim = on_backend(body)
    assert [a.duplicate for a in applied] == [False, False]
    assert claim == Claim(1, None)
