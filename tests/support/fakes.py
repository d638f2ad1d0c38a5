"""Stand-ins for tests.

Each section is independent; keep additions in a section of their own.
"""

from __future__ import annotations

from nowplaying.events import TrackEnd, TrackStart

# --- sensors: the pipeline's instrumentation hooks ----------------------------------------------


class RecordingSensor:
    """A :class:`streams.instrumentation.PipelineSensor` that records every hook call, in order,
    as ``(hook name without "on_", arguments...)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def of(self, hook: str) -> list[tuple[object, ...]]:
        """The arguments of every call of ``hook`` (e.g. ``"dead_letter"``), in order."""
        return [call[1:] for call in self.calls if call[0] == hook]

    def on_batch(self, size: int) -> None:
        self.calls.append(("batch", size))

    def on_event_applied(
        self, event: TrackStart | TrackEnd, duplicate: bool, variant: str | None
    ) -> None:
        self.calls.append(("event_applied", event.event_id, duplicate, variant))

    def on_dead_letter(self, reason: str) -> None:
        self.calls.append(("dead_letter", reason))

    def on_list_published(
        self, source: str, variant: str | None, latency_seconds: float | None
    ) -> None:
        self.calls.append(("list_published", source, variant, latency_seconds))

    def on_retry(self, dependency: str) -> None:
        self.calls.append(("retry", dependency))

    def on_dependency_up(self, dependency: str, up: bool) -> None:
        self.calls.append(("dependency_up", dependency, up))

    def on_redis_roundtrip(self, operation: str, seconds: float) -> None:
        self.calls.append(("redis_roundtrip", operation, seconds))

    def on_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.calls.append(("consumer_lag", topic, partition, lag))
