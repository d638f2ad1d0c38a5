"""The stream's processing core, independent of Faust: a batch of raw messages in, effects out.

For one batch (messages of the ``play-events`` topic in offset order):

1. validate every message against the event contract; failures become dead letters;
2. apply the valid events to the Redis feature store (one Lua call each, one pipelined round
   trip): dedupe by event id, append to the session log, refresh the TTL, return the log;
3. fold each returned log with :func:`features.session.fold_events` (the code training uses);
4. rank every ``track_start`` and ``steer`` event of the batch with ONE ``recommend`` call (during
   an A/B test, one call per variant: each listener's starts go to the model of the variant the
   listener is assigned to, see :mod:`models.experiments`), with the models of ONE snapshot
   taken when the batch starts (:mod:`streams.ranking`; :mod:`streams.reload` swaps models);
5. store states and lists in a second round trip (a list, once stored for a trigger event, is
   never replaced: a redelivered ``track_start`` republishes the stored list); with an
   attribution hook (:mod:`streams.outcome_hook`), the sessions' attribution is read in the
   first round trip and the outcomes of earlier lists saved in the second;
6. publish the lists, outcomes and dead letters and wait until Kafka acknowledged every one.

When :meth:`Pipeline.process_batch` returns, the batch's effects are durable in Redis and its
messages are acknowledged by Kafka: only then may the caller commit the batch's offsets.
:meth:`Pipeline.start_batch` returns after step 5 and the sends of step 6, with the wait for the
acknowledgements as an awaitable: the worker starts the next batch meanwhile.
Redis and Kafka failures are retried with exponential backoff, forever (never drop, never skip:
:class:`streams.retry.Retrier`); every step is idempotent, so a retried or redelivered batch has
the same effects.

The pipeline makes no metric call: it reports each fact to the injected
:class:`streams.instrumentation.PipelineSensor` (Prometheus in the worker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from features.session import SessionState
from features.store import Applied, AttributionSave, FeatureStore, Stamp, StoredList
from models.steered import steering_of
from nowplaying.events import RecommendationMessage, Rejection, dead_letter_for
from nowplaying.settings import Settings
from nowplaying.steer_events import InputEvent, parse_input_event
from streams.fencing import (
    PartitionOwner,
    batch_fencing,
    report_fenced,
    session_stamps,
    sort_answers,
    writable,
)
from streams.instrumentation import STORED_LIST, PipelineSensor
from streams.outcome_hook import OutcomeHook
from streams.ranking import (
    Assigner,
    FixedModels,
    ModelSnapshot,
    ModelSource,
    Ranked,
    Ranker,
    list_source,
    rank_states,
)
from streams.retry import Retrier
from streams.steering import triggers_list

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One consumed Kafka record, as the pipeline needs it."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


__all__ = ["Assigner", "Pipeline", "Ranker", "RawMessage"]

Record = tuple[str, bytes | None, bytes]


class Publisher(Protocol):
    """Sends one record; the returned awaitable completes when Kafka acknowledged it."""

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]: ...


@dataclass(frozen=True, slots=True)
class _ListJob:
    """A list to publish for a ``track_start``: computed now, or stored before."""

    applied: Applied
    source: RawMessage
    stored_json: str | None = None

    @property
    def event_id(self) -> str:
        return self.applied.event.event_id


class Pipeline:
    """Turns batches of ``play-events`` records into features, lists and dead letters.

    Clients are injected: ``store`` (a :class:`features.store.FeatureStore`), ``ranker``
    (a loaded Recommender), ``publisher`` (a Kafka producer), ``sensor`` (hears every fact
    the pipeline reports). ``clock`` returns epoch seconds; ``sleep`` is the backoff sleep (both
    injectable for tests). For an A/B test, ``variants`` (a ranker per variant name) and
    ``assigner`` (user id to variant name) replace ``ranker``; ``models`` (a source of model
    snapshots, e.g. a hot-reloading watcher) replaces all three. With ``owner`` (the worker's
    partitions), every write is fenced by the owner's epochs: messages of a partition it must
    not write are dropped unprocessed, and a partition the store fences is dropped from the
    batch (nothing published for it) and reported to the owner.
    """

    def __init__(
        self,
        settings: Settings,
        store: FeatureStore,
        ranker: Ranker,
        publisher: Publisher,
        *,
        sensor: PipelineSensor,
        variants: Mapping[str, Ranker] | None = None,
        assigner: Assigner | None = None,
        owner: PartitionOwner | None = None,
        models: ModelSource | None = None,
        attribution: OutcomeHook | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if (variants is None) != (assigner is None):
            raise ValueError("an A/B test needs both the variants and the assigner")
        self._settings = settings
        self._store = store
        rankers: dict[str | None, Ranker] = (
            {name: r for name, r in variants.items()} if variants else {None: ranker}
        )
        self._models = models or FixedModels(ModelSnapshot(rankers, assigner))
        self._attribution = attribution
        self._publisher = publisher
        self._owner = owner
        self._sensor = sensor
        self._clock = clock
        self._retrier = Retrier(settings, sensor, sleep)

    @property
    def failing(self) -> dict[str, str]:
        """Dependencies whose last call failed (and is being retried), with the error."""
        return self._retrier.failing

    async def process_batch(self, messages: Sequence[RawMessage]) -> None:
        """Process the batch; returns once its effects are durable and published."""
        await (await self.start_batch(messages))

    async def start_batch(self, messages: Sequence[RawMessage]) -> Awaitable[None]:
        """Process the batch up to handing its records to the Kafka producer; returns with an
        awaitable that completes when Kafka acknowledged every record (resending them all,
        with backoff, until it has). Redis effects are durable when this returns, so the next
        batch may start while this one's acknowledgements are on their way; its offsets may be
        committed only once the awaitable completed."""
        self._sensor.on_batch(len(messages))
        models = self._models.snapshot()  # once: the whole batch ranks with these models
        messages, epochs = writable(self._owner, messages)
        events, letters = self._validate(messages)
        valid = [e for e, _ in events]
        fencing = batch_fencing(messages, [m for _, m in events], epochs)
        hook = self._attribution
        applied = await self._retrier.run(
            "redis",
            lambda: self._timed(
                "apply", self._store.apply_events(valid, fencing, attribution=hook is not None)
            ),
        )
        ok, refused, fenced = sort_answers(applied, [m for _, m in events])
        letters += refused
        if fenced:
            letters = [(m, r) for m, r in letters if (m.topic, m.partition) not in fenced]
            report_fenced(fenced, self._owner, self._sensor)
        self._report_applied(ok, models)
        jobs, states = self._plan(ok)
        lists = self._rank(models, jobs)
        for job in jobs:
            if job.stored_json is None and job.event_id not in lists:
                letters.append((job.source, Rejection("ranking_failed", "the ranker failed")))
        jobs = [j for j in jobs if j.stored_json is not None or j.event_id in lists]
        stamps = session_stamps(ok, epochs)
        to_store = self._lists_to_store(jobs, lists)
        shown = {j.event_id: j.stored_json for j in jobs if j.stored_json is not None}
        shown.update((item.trigger_event_id, item.message_json) for item in to_store)
        folded = hook.fold(ok, shown) if hook is not None else None
        saves = folded.saves if folded is not None else ()
        stored = await self._retrier.run(
            "redis", lambda: self._store_results(ok, to_store, states, stamps, saves)
        )
        bodies = {j.event_id: j.stored_json or stored[j.event_id] for j in jobs}
        outgoing = self._outgoing(jobs, bodies, letters)
        if hook is not None and folded is not None:
            if bodies != shown:  # another writer stored a list first: attribute the one stored
                again = hook.fold(ok, bodies)
                write = self._store.write_results
                await self._retrier.run(
                    "redis", lambda: self._timed("write", write({}, [], {}, None, again.saves))
                )
                folded = again
            outgoing += folded.records
            folded.report()
        acks = await self._retrier.run("kafka", lambda: self._send(outgoing))
        return self._confirm(outgoing, acks, jobs, lists)

    async def _confirm(
        self,
        outgoing: Sequence[Record],
        acks: Sequence[Awaitable[Any]],
        jobs: Sequence[_ListJob],
        lists: Mapping[str, Ranked],
    ) -> None:
        pending: list[Sequence[Awaitable[Any]]] = [acks]

        async def acknowledged() -> None:
            # First the acknowledgements of the sends already made; after a failure, send again.
            await asyncio.gather(*(pending.pop() if pending else await self._send(outgoing)))

        await self._retrier.run("kafka", acknowledged)
        self._report_published(jobs, lists)

    # --- validation -------------------------------------------------------------------------

    def _validate(
        self, messages: Sequence[RawMessage]
    ) -> tuple[list[tuple[InputEvent, RawMessage]], list[tuple[RawMessage, Rejection]]]:
        events: list[tuple[InputEvent, RawMessage]] = []
        letters: list[tuple[RawMessage, Rejection]] = []
        horizon_ms = int(self._clock() * 1000) + self._settings.max_clock_skew_seconds * 1000
        for msg in messages:
            parsed = parse_input_event(msg.value or b"", self._settings.max_event_bytes)
            if not isinstance(parsed, Rejection) and parsed.ts > horizon_ms:
                parsed = Rejection(
                    "timestamp_in_future",
                    f"ts {parsed.ts} is more than {self._settings.max_clock_skew_seconds} s "
                    "ahead of the worker's clock",
                )
            if isinstance(parsed, Rejection):
                letters.append((msg, parsed))
            else:
                events.append((parsed, msg))
        return events, letters

    # --- Redis --------------------------------------------------------------------------------

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        """Await one Redis round trip, reporting its duration (a failed one's too)."""
        started = time.perf_counter()
        try:
            return await call
        finally:
            self._sensor.on_redis_roundtrip(operation, time.perf_counter() - started)

    def _lists_to_store(
        self, jobs: Sequence[_ListJob], lists: Mapping[str, Ranked]
    ) -> list[StoredList]:
        now_ms = int(self._clock() * 1000)
        events = {j.event_id: j.applied.event for j in jobs}
        return [
            StoredList(
                events[eid].user_id,
                events[eid].session_id,
                eid,
                self._message(events[eid], recs, now_ms).model_dump_json(),
            )
            for eid, recs in lists.items()
        ]

    async def _store_results(
        self,
        ok: Sequence[tuple[Applied, RawMessage]],
        to_store: Sequence[StoredList],
        states: Mapping[str, SessionState],
        stamps: Mapping[str, Stamp] | None,
        saves: Sequence[AttributionSave],
    ) -> dict[str, str]:
        """Store states, the new lists and the attribution saves; returns the stored list JSON
        by trigger event id."""
        activity = {a.event.user_id: (a.event.session_id, a.event.ts) for a, _ in ok}
        if not states and not to_store and not activity:
            return {}
        stored = await self._timed(
            "write", self._store.write_results(states, to_store, activity, stamps, saves)
        )
        return {item.trigger_event_id: body for item, body in zip(to_store, stored, strict=True)}

    # --- ranking ------------------------------------------------------------------------------

    def _plan(
        self, ok: Sequence[tuple[Applied, RawMessage]]
    ) -> tuple[list[_ListJob], dict[str, SessionState]]:
        """Which lists are due, and each touched session's latest state."""
        jobs: list[_ListJob] = []
        last: dict[str, Applied] = {}
        for a, msg in ok:
            last[a.event.session_id] = a
            if triggers_list(a.event):
                jobs.append(_ListJob(a, msg, a.stored_list if a.duplicate else None))
        states = {sid: a.state() for sid, a in last.items()}
        return jobs, states

    def _rank(self, models: ModelSnapshot, jobs: Sequence[_ListJob]) -> dict[str, Ranked]:
        """Lists by trigger event id for the jobs without a stored one: ONE ranker call for the
        whole batch (per variant during an A/B test). (Two copies of one event in a batch share
        one list.) An event the ranker fails on is left out."""
        due: dict[str, tuple[str, SessionState]] = {}
        for job in jobs:
            if job.stored_json is None and job.event_id not in due:
                state = job.applied.state_after_event()
                # A redelivered start whose record was trimmed from the log: rank on what is kept.
                due[job.event_id] = (
                    job.applied.event.user_id,
                    state if state is not None else job.applied.state(),
                )
        return rank_states(models, due, self._settings.top_k) if due else {}

    def _message(self, event: InputEvent, ranked: Ranked, now_ms: int) -> RecommendationMessage:
        return RecommendationMessage(
            user_id=event.user_id,
            session_id=event.session_id,
            trigger_event_id=event.event_id,
            model_version=ranked.model_version,
            variant=ranked.variant,
            generated_at=now_ms,
            recommendations=ranked.recs,
            steering=steering_of(ranked.recs),
        )

    # --- Kafka --------------------------------------------------------------------------------

    def _outgoing(
        self,
        jobs: Sequence[_ListJob],
        bodies: Mapping[str, str],
        letters: Sequence[tuple[RawMessage, Rejection]],
    ) -> list[Record]:
        s = self._settings
        out: list[Record] = []
        for job in jobs:
            body = bodies[job.event_id]
            out.append((s.topic_recommendations, job.applied.event.user_id.encode(), body.encode()))
        failed_at = int(self._clock() * 1000)
        for msg, rejection in letters:
            letter = dead_letter_for(
                msg.value or b"",
                rejection,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                failed_at=failed_at,
            )
            out.append((s.topic_dead_letters, msg.key, letter.model_dump_json().encode()))
            self._sensor.on_dead_letter(rejection.error_class)
        return out

    async def _send(self, records: Sequence[Record]) -> list[Awaitable[Any]]:
        """Hand every record to the producer; returns their acknowledgements."""
        return [await self._publisher.send(topic, key, value) for topic, key, value in records]

    def _report_published(self, jobs: Sequence[_ListJob], lists: Mapping[str, Ranked]) -> None:
        now = self._clock()
        for job in jobs:
            ts = job.source.timestamp_ms
            latency = None if ts is None else max(0.0, now - ts / 1000)
            ranked = None if job.stored_json is not None else lists.get(job.event_id)
            if ranked is None:
                self._sensor.on_list_published(STORED_LIST, None, latency)
            else:
                self._sensor.on_list_published(list_source(ranked.recs), ranked.variant, latency)

    # --- bookkeeping --------------------------------------------------------------------------

    def _report_applied(
        self, ok: Sequence[tuple[Applied, RawMessage]], models: ModelSnapshot
    ) -> None:
        for a, _ in ok:
            variant = None if a.duplicate else models.variant_of(a.event.user_id)
            self._sensor.on_event_applied(a.event, a.duplicate, variant)
