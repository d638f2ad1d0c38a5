"""A session's active intents: folded from steer records by the pure per-event function."""

from __future__ import annotations

from dataclasses import replace

from features.intents import INTENT_TTL_MS, MAX_ACTIVE_INTENTS, ActiveIntent, add_intent
from features.session import (
    SessionEvent,
    apply_event,
    decode_event,
    encode_event,
    fold_events,
    state_summary,
)

T0 = 1_764_355_200_000


def start(track: str, ts: int) -> SessionEvent:
    return SessionEvent("start", track, ts, None)


def steer(kind: str, track: str, ts: int) -> SessionEvent:
    return SessionEvent("steer", track, ts, None, kind)  # type: ignore[arg-type]


def test_steer_records_round_trip_and_are_one_line_of_ascii() -> None:
    for ev in (steer("more_like_this", 'tr,"ä"\n', T0), steer("discover", "", T0 + 1)):
        record = encode_event(ev)
        assert record.isascii() and "\n" not in record
        assert decode_event(record) == ev
        assert decode_event(record.encode()) == ev
    assert encode_event(steer("reset", "", T0)) == f'["i","reset",null,{T0}]'


def test_a_steer_changes_the_intents_only() -> None:
    before = fold_events([start("a", T0), start("b", T0 + 1000)])
    after = apply_event(before, steer("more_like_this", "b", T0 + 2000))
    assert after.intents == (
        ActiveIntent("more_like_this", "b", T0 + 2000, T0 + 2000 + INTENT_TTL_MS),
    )
    assert replace(after, intents=()) == before


def test_reset_clears_every_intent() -> None:
    state = fold_events(
        [start("a", T0), steer("discover", "", T0 + 1), steer("less_like_this", "a", T0 + 2)]
    )
    assert len(state.intents) == 2
    assert apply_event(state, steer("reset", "", T0 + 3)).intents == ()


def test_intents_expire_by_event_time_of_later_events() -> None:
    state = fold_events([start("a", T0), steer("familiar", "", T0)])
    ended = apply_event(state, SessionEvent("end", "a", T0 + 1, "listened"))
    assert ended.intents == state.intents  # plays keep what is still active
    still = apply_event(ended, start("b", T0 + INTENT_TTL_MS - 1))
    assert [i.kind for i in still.intents] == ["familiar"]
    gone = apply_event(still, start("c", T0 + INTENT_TTL_MS))
    assert gone.intents == ()


def test_contradicting_and_repeated_intents_replace_each_other() -> None:
    state = fold_events(
        [
            steer("discover", "", T0),
            steer("familiar", "", T0 + 1),  # replaces discover
            steer("more_like_this", "x", T0 + 2),
            steer("less_like_this", "x", T0 + 3),  # replaces the intent on x
            steer("more_like_this", "y", T0 + 4),
        ]
    )
    assert [(i.kind, i.track_id) for i in state.intents] == [
        ("familiar", None),
        ("less_like_this", "x"),
        ("more_like_this", "y"),
    ]


def test_at_most_the_cap_of_intents_are_active_the_newest_kept() -> None:
    intents: tuple[ActiveIntent, ...] = ()
    for n in range(MAX_ACTIVE_INTENTS + 3):
        intents = add_intent(intents, "more_like_this", f"t{n}", T0 + n)
    assert len(intents) == MAX_ACTIVE_INTENTS
    assert intents[-1].track_id == f"t{MAX_ACTIVE_INTENTS + 2}"
    assert intents[0].track_id == "t3"


def test_a_track_intent_without_a_track_is_not_kept() -> None:
    assert add_intent((), "more_like_this", None, T0) == ()


def test_the_summary_shows_the_active_intents() -> None:
    state = fold_events([start("a", T0), steer("less_like_this", "a", T0 + 5)])
    assert state_summary(state)["intents"] == [
        {
            "kind": "less_like_this",
            "track_id": "a",
            "ts": T0 + 5,
            "expires_at": T0 + 5 + INTENT_TTL_MS,
        }
    ]
