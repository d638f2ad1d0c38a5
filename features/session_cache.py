"""A worker's memory of recently seen sessions: their logs and the states folded from them.

The Redis feature store (:mod:`features.store`) keeps one, so Redis returns only the records the
worker has not seen yet and each event costs one fold step, not a fold of the whole session.
Pure feature code: it knows session records and :func:`features.session.fold_events`, no storage.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from features.session import SessionState, decode_event, fold_events

#: How many sessions' logs and states the worker keeps in memory (least recently used go).
CACHED_SESSIONS: Final = 20_000


class SessionCache:
    """Recently seen sessions' logs and the states folded from them (least recently used go).

    A session's log only grows at its end (until it is trimmed or expires), so the state of a
    longer log is the cached state plus the new records; anything else is folded from scratch.
    """

    def __init__(self, capacity: int = CACHED_SESSIONS) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[tuple[str, ...], SessionState]] = OrderedDict()

    def records(self, session_id: str) -> tuple[str, ...]:
        entry = self._entries.get(session_id)
        return entry[0] if entry is not None else ()

    def fold(self, session_id: str, records: tuple[str, ...]) -> SessionState:
        """The state after ``records`` (the whole log), reusing the cached prefix's state."""
        entry = self._entries.get(session_id)
        if entry is not None and records[: len(entry[0])] == entry[0]:
            new = records[len(entry[0]) :]
            state = fold_events((decode_event(r) for r in new), entry[1])
        else:
            state = fold_events(decode_event(r) for r in records)
        self._entries[session_id] = (records, state)
        self._entries.move_to_end(session_id)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return state
