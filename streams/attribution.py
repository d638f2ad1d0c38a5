"""The pipeline's attribution hook: each batch's events attributed to the lists shown before.

After a batch's lists are stored (:class:`streams.pipeline.Pipeline`), :meth:`Attribution.outcomes`
folds the batch's applied events, session by session in input order, through
:mod:`features.attribution`, starting from each session's stored state, and returns the outcome
records to publish with the batch (topic ``NP_TOPIC_OUTCOMES``, key: the exposure id). The new
states and the outcomes are saved to Redis (:mod:`features.store.attribution`) before the batch's
records are sent, so before its offsets can be committed.

Exactly once, under redelivery: the state records the partition and offset of the last event it
folded (and the last event ids), so an event folded before is not folded again; an event
redelivered after its batch was saved (a crash before the offsets were committed) republishes the
outcome it completed, stored under its event id, byte for byte; one redelivered before its batch
was saved is simply folded now, from the state before it. Outcome messages are deterministic
(events and stored lists only), so the readout, which dedupes by exposure id, counts each once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from features.attribution import Exposure, exposure_of, on_end, on_start, on_steer
from features.session import outcome_of
from features.store import Applied
from features.store.attribution import AttributionStore, RedisAttributionStore, SessionUpdate
from nowplaying.events import TrackEnd, TrackStart
from nowplaying.keys import Keys, partition_tag
from nowplaying.settings import Settings
from streams.instrumentation import PipelineSensor
from streams.pipeline import RawMessage, Record


class Attribution:
    """Implements :class:`streams.pipeline.OutcomeHook`."""

    def __init__(self, store: AttributionStore, sensor: PipelineSensor, topic: str) -> None:
        self._store = store
        self._sensor = sensor
        self._topic = topic

    async def outcomes(
        self, ok: Sequence[tuple[Applied, RawMessage]], lists: Mapping[str, str]
    ) -> list[Record]:
        by_session: dict[str, list[tuple[Applied, RawMessage]]] = {}
        for item in ok:
            by_session.setdefault(item[0].event.session_id, []).append(item)
        states = await self._store.load(list(by_session))
        folded = [
            (a.event.session_id, a.event.event_id)
            for a, m in ok
            if states[a.event.session_id].folded(
                partition_tag(m.topic, m.partition), m.offset, a.event.event_id
            )
        ]
        stored = await self._store.stored_outcomes(folded) if folded else {}
        records: list[Record] = []
        updates: list[SessionUpdate] = []
        for sid, items in by_session.items():
            state = states[sid]
            emitted: dict[str, str] = {}
            changed = False
            for applied, msg in items:
                event = applied.event
                tag = partition_tag(msg.topic, msg.partition)
                if state.folded(tag, msg.offset, event.event_id):
                    body = stored.get((sid, event.event_id))
                    if body is not None:  # completed an outcome when first folded: again
                        records.append(self._record(body, json.loads(body)["exposure_id"]))
                    continue
                if isinstance(event, TrackStart):
                    shown = self._shown(lists.get(event.event_id), msg)
                    state, done = on_start(state, event.event_id, event.track_id, event.ts, shown)
                elif isinstance(event, TrackEnd):
                    state, done = on_end(state, event.track_id, event.ts, outcome_of(event))
                else:  # a steer: its refreshed list is the one shown from now on
                    shown = self._shown(lists.get(event.event_id), msg)
                    state, done = on_steer(state, shown), []
                state, changed = state.at(tag, msg.offset, event.event_id), True
                for outcome in done:
                    body = outcome.model_dump_json()
                    emitted[event.event_id] = body
                    records.append(self._record(body, outcome.exposure_id))
                    self._sensor.on_outcome(outcome)
            if changed:
                updates.append(SessionUpdate(sid, state, emitted))
        await self._store.save(updates)
        return records

    def _shown(self, body: str | None, msg: RawMessage) -> Exposure | None:
        if body is None:
            return None
        exposure = exposure_of(body, msg.timestamp_ms)
        self._sensor.on_exposure(exposure.variant, exposure.model_version)
        return exposure

    def _record(self, body: str, exposure_id: str) -> Record:
        return (self._topic, exposure_id.encode(), body.encode())


def attribution_for(settings: Settings, redis: Any, sensor: PipelineSensor) -> Attribution:
    """The worker's attribution on its Redis client."""
    store = RedisAttributionStore(
        redis, Keys(settings.redis_key_prefix), settings.session_ttl_seconds
    )
    return Attribution(store, sensor, settings.topic_outcomes)
