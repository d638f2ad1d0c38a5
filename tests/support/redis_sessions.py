"""A session's events as the pipeline should have stored them, and what Redis holds: what the
end-to-end invariant (:func:`tests.support.pipeline.check_invariant`) and the relaxed one after
a Redis state loss (:func:`tests.support.faults.check_after_state_loss`) compare."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

from features.session import encode_event, fold_events, state_summary, to_session_event
from nowplaying.clients import redis_client
from nowplaying.events import PlayEvent
from nowplaying.keys import Keys
from nowplaying.settings import Settings


def distinct_by_session(events: Iterable[PlayEvent]) -> dict[str, list[PlayEvent]]:
    """Each session's distinct events (the first copy of each event id), in produce order."""
    by_session: dict[str, list[PlayEvent]] = defaultdict(list)
    seen: set[str] = set()
    for ev in events:
        if ev.event_id not in seen:
            seen.add(ev.event_id)
            by_session[ev.session_id].append(ev)
    return by_session


def session_records(events: Iterable[PlayEvent]) -> list[str]:
    """The session log records the worker writes for these events."""
    return [encode_event(to_session_event(e)) for e in events]


def stored_sessions(
    settings: Settings, session_ids: Sequence[str]
) -> list[tuple[list[str], bytes | None]]:
    """Each session's log records and stored state JSON in Redis, in one pipelined read."""
    keys = Keys(settings.redis_key_prefix)
    client = redis_client(settings)
    try:
        pipe = client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.lrange(keys.session_log(sid), 0, -1)
            pipe.get(keys.session_state(sid))
        replies = pipe.execute()
    finally:
        client.close()
    logs, states = replies[0::2], replies[1::2]
    return [([r.decode() for r in log], state) for log, state in zip(logs, states, strict=True)]


def state_is_fold_of(state: bytes | None, events: Iterable[PlayEvent]) -> bool:
    """Whether the stored state JSON equals the offline features of these events."""
    offline = state_summary(fold_events(to_session_event(e) for e in events))
    return state is not None and json.loads(state) == json.loads(json.dumps(offline))
