"""The feature store's contract: what the stream pipeline needs of it, and its result types.

:class:`FeatureStore` is the seam between the pipeline and a storage back-end
(:mod:`features.store.redis_single`, :mod:`features.store.redis_cluster`, and the tests'
in-memory double); one contract test suite holds every back-end to the same behaviour:

* :meth:`FeatureStore.apply_events` applies events in order, each at most once per session
  (dedupe by event id); a new event is appended to the session's log, which keeps the last
  ``max_events`` records, and refreshes the session's inactivity TTL; every event's answer
  holds the session's whole log right after it (a redelivered one: the log as it is now) and
  the list stored for it, if any.
* :meth:`FeatureStore.write_results` stores session states, recommendation lists (once per
  trigger event: a list once stored is never replaced, and the stored one is returned) and the
  users' pointers, each with the TTL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from features.session import (
    SessionState,
    decode_event,
    encode_event,
    fold_events,
    to_session_event,
)
from nowplaying.events import PlayEvent

#: How many users the active-users index keeps (the most recently active).
ACTIVE_USERS_KEPT: Final = 1000


@dataclass(frozen=True, slots=True)
class Applied:
    """What the store answered for one event: new or a redelivery, the session log after it
    and the state folded from that log (same fold as training).

    ``error`` is set (and the rest empty) when the store refused the event alone (in Redis: a
    session key of the wrong type); the event cannot be applied.
    """

    event: PlayEvent
    duplicate: bool
    records: tuple[str, ...]
    folded: SessionState = field(default_factory=SessionState)
    stored_list: str | None = None
    error: str | None = None

    def state(self) -> SessionState:
        """The session state after the whole returned log."""
        return self.folded

    def state_after_event(self) -> SessionState | None:
        """The state right after this event: the whole log for a new event; for a redelivery,
        the log up to the event's own record (None when it was trimmed away)."""
        if not self.duplicate:
            return self.folded
        record = encode_event(to_session_event(self.event))
        try:
            end = self.records.index(record) + 1
        except ValueError:
            return None
        return fold_events(decode_event(r) for r in self.records[:end])


@dataclass(frozen=True, slots=True)
class StoredList:
    """A recommendation list to store: JSON of the message, and whether it is the user's latest."""

    user_id: str
    session_id: str
    trigger_event_id: str
    message_json: str
    update_latest: bool = True


class FeatureStore(Protocol):
    """The worker's writes (see the module docstring for the contract). Errors of the
    connection propagate: the caller retries, and every call is idempotent."""

    async def apply_events(self, events: Sequence[PlayEvent]) -> list[Applied]:
        """Apply the events in order; one answer per event, in the same order."""
        ...

    async def write_results(
        self,
        states: Mapping[str, SessionState],
        lists: Sequence[StoredList],
        activity: Mapping[str, tuple[str, int]],
    ) -> list[str]:
        """Store session states, recommendation lists, user pointers and active users.

        ``states``: session id -> state after its last event; ``activity``: user id ->
        (session id, ts of the user's last event). A list is stored under its trigger event id
        only if none is stored yet. Returns, for each list, the JSON that is stored (the one to
        publish). A user's latest list is the last one given with ``update_latest``.
        """
        ...


def as_text(value: str | bytes) -> str:
    """A Redis reply (bytes without ``decode_responses``) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
