"""The pipeline's attribution hook: each batch's events attributed to the lists shown before.

:meth:`Attribution.fold` folds the batch's applied events, session by session in input order,
through :mod:`features.attribution`, starting from each session's stored state (read with the
batch's apply, :attr:`features.store.Applied.attribution_state`), and returns the outcome
records to publish with the batch (topic ``NP_TOPIC_OUTCOMES``, key: the exposure id) and the
new states and outcomes, which the pipeline stores with the batch's lists
(:class:`features.store.AttributionSave`, :mod:`streams.outcome_hook`) before the batch's
records are sent, so before its offsets can be committed.

Exactly once, under redelivery: the state records the partition and offset of the last event it
folded (and the last event ids), so an event folded before is not folded again; an event
redelivered after its batch was saved (a crash before the offsets were committed) republishes the
outcome it completed, stored under its event id (:attr:`features.store.Applied.stored_outcome`),
byte for byte; one redelivered before its batch was saved is simply folded now, from the state
before it. Outcome messages are deterministic (events and stored lists only), so the readout,
which dedupes by exposure id, counts each once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from features.attribution import (
    AttributionState,
    Exposure,
    dump_state,
    exposure_of,
    load_state,
    on_end,
    on_start,
    on_steer,
)
from features.session import outcome_of
from features.store import Applied, AttributionSave
from nowplaying.events import TrackEnd, TrackStart
from nowplaying.keys import partition_tag
from nowplaying.outcomes import OutcomeMessage
from nowplaying.settings import Settings
from streams.instrumentation import PipelineSensor
from streams.pipeline import RawMessage, Record


@dataclass(slots=True)
class Folded:
    """Implements :class:`streams.outcome_hook.Attributed`."""

    sensor: PipelineSensor
    records: list[Record] = field(default_factory=list)
    saves: list[AttributionSave] = field(default_factory=list)
    exposures: list[Exposure] = field(default_factory=list)
    outcomes: list[OutcomeMessage] = field(default_factory=list)

    def report(self) -> None:
        for exposure in self.exposures:
            self.sensor.on_exposure(exposure.variant, exposure.model_version)
        for outcome in self.outcomes:
            self.sensor.on_outcome(outcome)


class Attribution:
    """Implements :class:`streams.outcome_hook.OutcomeHook`."""

    def __init__(self, sensor: PipelineSensor, topic: str) -> None:
        self._sensor = sensor
        self._topic = topic

    def fold(self, ok: Sequence[tuple[Applied, RawMessage]], lists: Mapping[str, str]) -> Folded:
        by_session: dict[str, list[tuple[Applied, RawMessage]]] = {}
        for item in ok:
            by_session.setdefault(item[0].event.session_id, []).append(item)
        out = Folded(self._sensor)
        for sid, items in by_session.items():
            state = start = load_state(items[0][0].attribution_state)
            emitted: dict[str, str] = {}
            for item in items:
                state = self._event(state, item, lists, emitted, out)
            if state is not start:
                save = AttributionSave(sid, state.tag, state.offset, dump_state(state), emitted)
                out.saves.append(save)
        return out

    def _event(
        self,
        state: AttributionState,
        item: tuple[Applied, RawMessage],
        lists: Mapping[str, str],
        emitted: dict[str, str],
        out: Folded,
    ) -> AttributionState:
        """The state after one event (the state itself when it was folded before)."""
        applied, msg = item
        event = applied.event
        tag = partition_tag(msg.topic, msg.partition)
        if state.folded(tag, msg.offset, event.event_id):
            body = applied.stored_outcome
            if body is not None:  # completed an outcome when first folded: again
                out.records.append(self._record(body, json.loads(body)["exposure_id"]))
            return state
        if isinstance(event, TrackStart):
            shown = self._shown(lists.get(event.event_id), msg, out)
            state, done = on_start(state, event.event_id, event.track_id, event.ts, shown)
        elif isinstance(event, TrackEnd):
            state, done = on_end(state, event.track_id, event.ts, outcome_of(event))
        else:  # a steer: its refreshed list is the one shown from now on
            shown = self._shown(lists.get(event.event_id), msg, out)
            state, done = on_steer(state, shown), []
        for outcome in done:
            body = outcome.model_dump_json()
            emitted[event.event_id] = body
            out.records.append(self._record(body, outcome.exposure_id))
            out.outcomes.append(outcome)
        return state.at(tag, msg.offset, event.event_id)

    def _shown(self, body: str | None, msg: RawMessage, out: Folded) -> Exposure | None:
        if body is None:
            return None
        exposure = exposure_of(body, msg.timestamp_ms)
        out.exposures.append(exposure)
        return exposure

    def _record(self, body: str, exposure_id: str) -> Record:
        return (self._topic, exposure_id.encode(), body.encode())


def attribution_for(settings: Settings, sensor: PipelineSensor) -> Attribution:
    """The worker's attribution (its state is read and saved by the feature store's calls)."""
    return Attribution(sensor, settings.topic_outcomes)
