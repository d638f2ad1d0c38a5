"""Steer events in the feature store, on every back-end: applied once, kept in the session log
with the plays, folded into the state's intents, and stored with the state the API reads."""

from __future__ import annotations

from features.intents import INTENT_TTL_MS
from features.session import fold_events, to_session_event
from features.store import Applied
from nowplaying.steer_events import InputEvent, SteerEvent
from tests.contract.conftest import OnBackend
from tests.support.store import TS, plays
from tests.support.store_backends import Backend


def steer(session: str, i: int, intent: str, track: str | None = None) -> SteerEvent:
    fields = {} if track is None else {"track_id": track}
    return SteerEvent.model_validate(
        {
            "event_id": f"{session}-steer-{i}",
            "event_type": "steer",
            "user_id": "u1",
            "session_id": session,
            "ts": TS + 10_000 + i,
            "intent": intent,
            **fields,
        }
    )


def test_steers_apply_once_and_fold_into_the_intents(on_backend: OnBackend) -> None:
    events: list[InputEvent] = [*plays("s1", 2), steer("s1", 0, "more_like_this", "t-s1-1")]
    events.append(steer("s1", 1, "discover"))

    async def body(b: Backend) -> tuple[list[Applied], list[Applied], dict[str, object] | None]:
        first = await b.store.apply_events(events)
        await b.store.write_results({"s1": first[-1].state()}, [], {"u1": ("s1", TS)})
        again = await b.store.apply_events(events[-2:])  # a redelivery of the steers
        return first, again, await b.reader.session_features("s1")

    first, again, features = on_backend(body)
    assert [a.duplicate for a in first] == [False] * 6 and all(a.duplicate for a in again)
    state = first[-1].state()
    assert state == fold_events(to_session_event(e) for e in events)
    assert [(i.kind, i.track_id) for i in state.intents] == [
        ("more_like_this", "t-s1-1"),
        ("discover", None),
    ]
    assert state.position == 2  # steers are not plays
    assert again[-1].state_after_event() == state
    assert again[0].state_after_event() == fold_events(to_session_event(e) for e in events[:5])
    assert features is not None
    assert features["intents"] == [
        {
            "kind": "more_like_this",
            "track_id": "t-s1-1",
            "ts": TS + 10_000,
            "expires_at": TS + 10_000 + INTENT_TTL_MS,
        },
        {
            "kind": "discover",
            "track_id": None,
            "ts": TS + 10_001,
            "expires_at": TS + 10_001 + INTENT_TTL_MS,
        },
    ]
