"""The feature store's attribution contract (:mod:`features.store.base`,
:mod:`features.store.attribution`) on every back-end: a session's attribution state and its
events' stored outcomes are read by ``apply_events(attribution=True)`` and saved by
``write_results(attribution=...)``, in the same calls as the events and the lists.
"""

from __future__ import annotations

from features.attribution import AttributionState, dump_state
from features.store import Applied, AttributionSave, StoredList
from nowplaying.events import PlayEvent
from tests.contract.conftest import OnBackend
from tests.support.store import list_message, plays, start
from tests.support.store_backends import Backend


def state_at(tag: str, offset: int, *recent: str) -> str:
    return dump_state(AttributionState(tag=tag, offset=offset, recent=recent))


def save(session: str, tag: str, offset: int, **emitted: str) -> AttributionSave:
    return AttributionSave(session, tag, offset, state_at(tag, offset), emitted)


async def read(b: Backend, events: list[PlayEvent]) -> list[Applied]:
    return await b.store.apply_events(events, attribution=True)


def test_the_apply_reads_the_sessions_attribution_and_each_events_stored_outcome(
    on_backend: OnBackend,
) -> None:
    evs = plays("s1", 2)
    other = start("s2", 0, "u2")

    async def body(b: Backend) -> tuple[list[Applied], ...]:
        plain = await b.store.apply_events(evs[:1])
        empty = await read(b, evs[1:2])
        stored = await b.store.write_results(
            {}, [], {}, None, [save("s1", "p0", 1, **{evs[1].event_id: '{"o":1}'})]
        )
        assert stored == []
        after = await read(b, [*evs, other])
        return plain, empty, after

    plain, empty, after = on_backend(body)
    assert (plain[0].attribution_state, plain[0].stored_outcome) == (None, None)  # not asked
    assert (empty[0].attribution_state, empty[0].stored_outcome) == (None, None)  # none stored
    s1, s2 = after[:-1], after[-1]
    assert [a.attribution_state for a in s1] == [state_at("p0", 1)] * len(evs)  # on every event
    assert [a.stored_outcome for a in s1] == [None, '{"o":1}', None, None]
    assert [a.duplicate for a in s1] == [True, True, False, False]  # applied as ever
    assert (s2.attribution_state, s2.stored_outcome) == (None, None)  # another session's


def test_a_save_never_moves_back_on_its_partition_and_outcomes_are_never_replaced(
    on_backend: OnBackend,
) -> None:
    ev = start("s1", 0)

    async def body(b: Backend) -> tuple[list[str | None], list[str | None], list[int]]:
        states, outcomes = [], []
        steps = [
            save("s1", "p0", 5, **{ev.event_id: "first"}),
            save("s1", "p0", 5, **{ev.event_id: "second"}),  # a repeat: refused
            save("s1", "p0", 4),  # behind on the same partition: refused
            save("s1", "p0", 6, **{ev.event_id: "third"}),  # further: state, not the outcome
            save("s1", "p1", 0),  # another partition (moved): written
        ]
        for step in steps:
            await b.store.write_results({}, [], {}, None, [step])
            (applied,) = await read(b, [ev])
            states.append(applied.attribution_state)
            outcomes.append(applied.stored_outcome)
        ttls = [
            await b.ttl(b.keys.session_attribution("s1")),
            await b.ttl(b.keys.session_outcomes("s1")),
        ]
        return states, outcomes, ttls

    states, outcomes, ttls = on_backend(body)
    p5, p6, q0 = state_at("p0", 5), state_at("p0", 6), state_at("p1", 0)
    assert states == [p5, p5, p5, p6, q0]
    assert outcomes == ["first"] * 5
    assert all(0 < ttl <= 1800 for ttl in ttls)  # both live with the session


def test_a_save_goes_with_its_sessions_lists_only_when_they_are_stored_as_given(
    on_backend: OnBackend,
) -> None:
    a0, b0 = start("sa", 0, "ua"), start("sb", 0, "ub")
    ours_a, ours_b = list_message(a0, 1), list_message(b0, 1)
    theirs_a = list_message(a0, 2)

    async def body(b: Backend) -> tuple[list[str], list[str], list[str | None]]:
        await b.store.apply_events([a0, b0])
        first = await b.store.write_results(
            {},
            [
                StoredList("ua", "sa", a0.event_id, ours_a),
                StoredList("ub", "sb", b0.event_id, ours_b),
            ],
            {},
            None,
            [save("sa", "p0", 1), save("sb", "p0", 1)],
        )
        # a retry of the same write (its reply lost): the lists are stored as given, so the
        # saves go on; then another writer's list for a trigger already stored: sa's save waits
        again = await b.store.write_results(
            {},
            [
                StoredList("ua", "sa", a0.event_id, ours_a),
                StoredList("ub", "sb", b0.event_id, ours_b),
            ],
            {},
            None,
            [save("sa", "p0", 2), save("sb", "p0", 2)],
        )
        late = await b.store.write_results(
            {},
            [StoredList("ua", "sa", a0.event_id, theirs_a)],
            {},
            None,
            [save("sa", "p0", 3), save("sb", "p0", 3)],
        )
        applied = await read(b, [a0, b0])
        return first + again, late, [a.attribution_state for a in applied]

    written, late, states = on_backend(body)
    assert written == [ours_a, ours_b] * 2
    assert late == [ours_a]  # the list stored first is the one published
    assert states == [state_at("p0", 2), state_at("p0", 3)]  # sa's last save not stored
