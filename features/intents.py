"""A session's active intents: what the listener asked for, until it expires.

Steer events (:class:`nowplaying.steer_events.SteerEvent`) are kept in the session log like plays
(a compact record, :func:`features.session.encode_event`) and folded by the same pure
:func:`features.session.apply_event` into :attr:`SessionState.intents`:

* a new intent is active for :data:`INTENT_TTL_MS` (30 minutes) of event time;
* expiry is judged against event time (the ``ts`` of each event folded), never the wall clock,
  so the state stays a pure function of the records;
* at most :data:`MAX_ACTIVE_INTENTS` are active, the newest kept;
* an intent replaces the ones it contradicts or repeats: ``discover`` and ``familiar`` replace
  each other (and themselves); ``more_like_this`` and ``less_like_this`` replace an intent on the
  same track (either kind);
* ``reset`` clears them all (and is not kept itself).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from nowplaying.steer_events import INTENT_KINDS, TRACK_INTENTS, IntentKind

__all__ = [
    "INTENT_KINDS",
    "INTENT_TTL_MS",
    "MAX_ACTIVE_INTENTS",
    "TRACK_INTENTS",
    "ActiveIntent",
    "IntentKind",
    "add_intent",
    "live_intents",
]

#: How long an intent steers the session, in event-time milliseconds (30 minutes).
INTENT_TTL_MS: Final = 30 * 60 * 1000
#: At most this many intents are active at once (the newest kept).
MAX_ACTIVE_INTENTS: Final = 4
#: Track-less intents that replace each other.
_MOODS: Final[frozenset[IntentKind]] = frozenset({"discover", "familiar"})


class ActiveIntent(NamedTuple):
    kind: IntentKind
    track_id: str | None  # the steered track (more_like_this / less_like_this), else None
    ts: int  # event time of the steer event, epoch ms
    expires_at: int  # ts + INTENT_TTL_MS: inactive from this event time on


def live_intents(intents: tuple[ActiveIntent, ...], now_ms: int) -> tuple[ActiveIntent, ...]:
    """The intents still active at event time ``now_ms``."""
    if all(i.expires_at > now_ms for i in intents):
        return intents
    return tuple(i for i in intents if i.expires_at > now_ms)


def add_intent(
    intents: tuple[ActiveIntent, ...], kind: IntentKind, track_id: str | None, ts: int
) -> tuple[ActiveIntent, ...]:
    """The active intents after a steer event (oldest first). Pure."""
    if kind == "reset":
        return ()
    if kind in TRACK_INTENTS and not track_id:
        return live_intents(intents, ts)  # not a valid steer (the contract refuses it)
    kept = [i for i in live_intents(intents, ts) if not _replaces(kind, track_id, i)]
    kept.append(
        ActiveIntent(kind, track_id if kind in TRACK_INTENTS else None, ts, ts + INTENT_TTL_MS)
    )
    return tuple(kept[-MAX_ACTIVE_INTENTS:])


def _replaces(kind: IntentKind, track_id: str | None, old: ActiveIntent) -> bool:
    if kind in _MOODS:
        return old.kind in _MOODS
    return old.kind in TRACK_INTENTS and old.track_id == track_id
