"""The stream's instrumentation seam: the pipeline and the worker report facts to a sensor.

The pipeline makes no metric call of its own: it calls a :class:`PipelineSensor` hook for each
fact (a batch taken, an event applied, a dead letter, a list published, a retry, a Redis round
trip, a gap in the input, a fenced batch, ...), and the sensor decides what to do with it.
Implementations:

* :class:`PrometheusSensor` feeds the metrics of :mod:`nowplaying.metrics` (the worker's);
* :class:`CountingSensor` keeps running counts (the worker's batch log, tests, benchmarks);
* :class:`Sensors` hands every fact to several sensors;
* :class:`NullSensor` ignores everything (a base for sensors that want a few hooks only).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Generic, Protocol, TypeVar

from prometheus_client.metrics import MetricWrapperBase

from features.session import outcome_of
from nowplaying import metrics
from nowplaying.events import TrackEnd
from nowplaying.outcomes import OutcomeMessage
from nowplaying.steer_events import InputEvent

#: ``source`` of :meth:`PipelineSensor.on_list_published` for a list stored before and
#: republished (a redelivered ``track_start``); computed lists are ``model``, ``popular``
#: (the popularity fallback only) or ``empty``.
STORED_LIST: Final = "stored"


class PipelineSensor(Protocol):
    """The facts the stream reports, one hook each."""

    def on_batch(self, size: int) -> None:
        """A batch of ``size`` messages starts."""

    def on_event_applied(self, event: InputEvent, duplicate: bool, variant: str | None) -> None:
        """A valid event reached the feature store: applied now, or ``duplicate`` (applied
        before). ``variant``: the listener's A/B test variant (None outside a test, and for
        duplicates)."""

    def on_dead_letter(self, reason: str) -> None:
        """A message goes to the dead-letter topic; ``reason`` is its error class."""

    def on_list_published(
        self, source: str, variant: str | None, latency_seconds: float | None
    ) -> None:
        """Kafka acknowledged a list: ``source`` is :data:`STORED_LIST` or the computed list's
        kind; ``variant`` the A/B variant that computed it; ``latency_seconds`` the time from
        the play event's Kafka timestamp (None without one)."""

    def on_retry(self, dependency: str) -> None:
        """A call to ``dependency`` (``redis``, ``kafka``) failed and will be retried."""

    def on_dependency_up(self, dependency: str, up: bool) -> None:
        """The last call to ``dependency`` succeeded (``up``) or failed."""

    def on_redis_roundtrip(self, operation: str, seconds: float) -> None:
        """One Redis round trip of the batch (``apply``, ``write``), failed ones included."""

    def on_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Messages between the partition's high watermark and what the worker released."""

    def on_offset_gap(self, topic: str, partition: int, expected: int, offset: int) -> None:
        """The stream skipped offsets ``expected`` up to ``offset``: the consumer is rewound."""

    def on_fenced_batch(self, topic: str, partition: int) -> None:
        """The store refused a batch of the partition: another worker owns it now."""

    def on_exposure(self, variant: str | None, model_version: str) -> None:
        """A list was shown (attribution folded its trigger): an exposure."""

    def on_outcome(self, outcome: OutcomeMessage) -> None:
        """An exposure's outcome was attributed (published to the outcomes topic)."""


class NullSensor:
    """Ignores every fact."""

    def on_batch(self, size: int) -> None:
        pass

    def on_event_applied(self, event: InputEvent, duplicate: bool, variant: str | None) -> None:
        pass

    def on_dead_letter(self, reason: str) -> None:
        pass

    def on_list_published(
        self, source: str, variant: str | None, latency_seconds: float | None
    ) -> None:
        pass

    def on_retry(self, dependency: str) -> None:
        pass

    def on_dependency_up(self, dependency: str, up: bool) -> None:
        pass

    def on_redis_roundtrip(self, operation: str, seconds: float) -> None:
        pass

    def on_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        pass

    def on_offset_gap(self, topic: str, partition: int, expected: int, offset: int) -> None:
        pass

    def on_fenced_batch(self, topic: str, partition: int) -> None:
        pass

    def on_exposure(self, variant: str | None, model_version: str) -> None:
        pass

    def on_outcome(self, outcome: OutcomeMessage) -> None:
        pass


M = TypeVar("M", bound=MetricWrapperBase)


class _Children(Generic[M]):
    """A labelled metric's children, each looked up once: ``labels()`` validates and joins the
    label values and takes the metric's lock on every call (about 1 µs), and the hooks below run
    several times per event and per batch. Only for labels of few values."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class PrometheusSensor:
    """Feeds the worker's metrics (:mod:`nowplaying.metrics`)."""

    def __init__(self) -> None:
        self._events = _Children(metrics.EVENTS)
        self._variant_outcomes = _Children(metrics.VARIANT_OUTCOMES)
        self._recommendations = _Children(metrics.RECOMMENDATIONS)
        self._variant_lists = _Children(metrics.VARIANT_LISTS)
        self._dependency_up = _Children(metrics.DEPENDENCY_UP)
        self._redis_roundtrip = _Children(metrics.REDIS_ROUNDTRIP)

    def on_batch(self, size: int) -> None:
        metrics.BATCH_EVENTS.observe(size)

    def on_event_applied(self, event: InputEvent, duplicate: bool, variant: str | None) -> None:
        self._events(event.event_type).inc()
        if duplicate:
            metrics.DUPLICATE_EVENTS.inc()
        elif variant is not None and isinstance(event, TrackEnd):
            self._variant_outcomes(variant, outcome_of(event)).inc()

    def on_dead_letter(self, reason: str) -> None:
        metrics.DEAD_LETTERS.labels(reason).inc()

    def on_list_published(
        self, source: str, variant: str | None, latency_seconds: float | None
    ) -> None:
        if latency_seconds is not None:
            metrics.EVENT_TO_RECOMMENDATION.observe(latency_seconds)
        self._recommendations(source).inc()
        if variant is not None:
            self._variant_lists(variant).inc()

    def on_retry(self, dependency: str) -> None:
        metrics.RETRIES.labels(dependency).inc()

    def on_dependency_up(self, dependency: str, up: bool) -> None:
        self._dependency_up(dependency).set(1 if up else 0)

    def on_redis_roundtrip(self, operation: str, seconds: float) -> None:
        self._redis_roundtrip(operation).observe(seconds)

    def on_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        metrics.CONSUMER_LAG.labels(topic, str(partition)).set(lag)

    def on_offset_gap(self, topic: str, partition: int, expected: int, offset: int) -> None:
        metrics.OFFSET_GAPS.labels(topic, str(partition)).inc()

    def on_fenced_batch(self, topic: str, partition: int) -> None:
        metrics.FENCED_BATCHES.labels(topic, str(partition)).inc()

    def on_exposure(self, variant: str | None, model_version: str) -> None:
        metrics.EXPOSURES.labels(variant or "", model_version).inc()

    def on_outcome(self, outcome: OutcomeMessage) -> None:
        metrics.ATTRIBUTED_PLAYS.labels(
            outcome.variant or "",
            outcome.model_version,
            "true" if outcome.hit else "false",
            outcome.outcome,
        ).inc()


@dataclass(slots=True)
class Counts:
    """Running counts of the facts (the difference of two is what happened in between)."""

    messages: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    published: int = 0
    republished: int = 0

    def copy(self) -> Counts:
        return Counts(
            self.messages,
            self.applied,
            self.duplicates,
            Counter(self.dead_letters),
            self.published,
            self.republished,
        )

    def since(self, earlier: Counts) -> Counts:
        """What was counted after ``earlier`` (a copy taken then)."""
        return Counts(
            self.messages - earlier.messages,
            self.applied - earlier.applied,
            self.duplicates - earlier.duplicates,
            self.dead_letters - earlier.dead_letters,
            self.published - earlier.published,
            self.republished - earlier.republished,
        )


class CountingSensor(NullSensor):
    """Counts messages, events, dead letters (by reason) and lists."""

    def __init__(self) -> None:
        self.counts = Counts()

    def on_batch(self, size: int) -> None:
        self.counts.messages += size

    def on_event_applied(self, event: InputEvent, duplicate: bool, variant: str | None) -> None:
        if duplicate:
            self.counts.duplicates += 1
        else:
            self.counts.applied += 1

    def on_dead_letter(self, reason: str) -> None:
        self.counts.dead_letters[reason] += 1

    def on_list_published(
        self, source: str, variant: str | None, latency_seconds: float | None
    ) -> None:
        self.counts.published += 1
        self.counts.republished += source == STORED_LIST


class Sensors:
    """Hands every fact to each of ``sensors``, in order."""

    def __init__(self, *sensors: PipelineSensor) -> None:
        self.sensors = sensors

    def on_batch(self, size: int) -> None:
        for s in self.sensors:
            s.on_batch(size)

    def on_event_applied(self, event: InputEvent, duplicate: bool, variant: str | None) -> None:
        for s in self.sensors:
            s.on_event_applied(event, duplicate, variant)

    def on_dead_letter(self, reason: str) -> None:
        for s in self.sensors:
            s.on_dead_letter(reason)

    def on_list_published(
        self, source: str, variant: str | None, latency_seconds: float | None
    ) -> None:
        for s in self.sensors:
            s.on_list_published(source, variant, latency_seconds)

    def on_retry(self, dependency: str) -> None:
        for s in self.sensors:
            s.on_retry(dependency)

    def on_dependency_up(self, dependency: str, up: bool) -> None:
        for s in self.sensors:
            s.on_dependency_up(dependency, up)

    def on_redis_roundtrip(self, operation: str, seconds: float) -> None:
        for s in self.sensors:
            s.on_redis_roundtrip(operation, seconds)

    def on_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        for s in self.sensors:
            s.on_consumer_lag(topic, partition, lag)

    def on_offset_gap(self, topic: str, partition: int, expected: int, offset: int) -> None:
        for s in self.sensors:
            s.on_offset_gap(topic, partition, expected, offset)

    def on_fenced_batch(self, topic: str, partition: int) -> None:
        for s in self.sensors:
            s.on_fenced_batch(topic, partition)

    def on_exposure(self, variant: str | None, model_version: str) -> None:
        for s in self.sensors:
            s.on_exposure(variant, model_version)

    def on_outcome(self, outcome: OutcomeMessage) -> None:
        for s in self.sensors:
            s.on_outcome(outcome)
