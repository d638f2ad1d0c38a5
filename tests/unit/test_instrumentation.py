"""The instrumentation seam: what the Prometheus sensor makes of each hook (the metric names and
labels the dashboard queries), the counting sensor, and the fan-out."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import REGISTRY

from nowplaying.events import TrackEnd, TrackStart
from streams.instrumentation import (
    STORED_LIST,
    CountingSensor,
    NullSensor,
    PipelineSensor,
    PrometheusSensor,
    Sensors,
)
from tests.support.fakes import RecordingSensor

START = TrackStart(
    event_type="track_start",
    event_id="e-1",
    user_id="u",
    session_id="s",
    track_id="t",
    ts=1_795_800_000_000,
)
SKIP = TrackEnd(
    event_type="track_end",
    event_id="e-2",
    user_id="u",
    session_id="s",
    track_id="t",
    ts=1_795_800_001_000,
    skipped=True,
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_applied_events_count_by_type_duplicates_apart_and_outcomes_by_variant() -> None:
    sensor = PrometheusSensor()
    names: tuple[tuple[str, dict[str, str]], ...] = (
        ("nowplaying_events_total", {"event_type": "track_start"}),
        ("nowplaying_events_total", {"event_type": "track_end"}),
        ("nowplaying_duplicate_events_total", {}),
        ("nowplaying_variant_outcomes_total", {"variant": "v-sensor", "outcome": "skip_early"}),
    )
    before = [sample(n, **labels) for n, labels in names]
    sensor.on_event_applied(START, False, "v-sensor")  # a start has no outcome
    sensor.on_event_applied(SKIP, False, "v-sensor")
    sensor.on_event_applied(SKIP, True, None)  # a redelivery: counted, no outcome
    sensor.on_event_applied(SKIP, False, None)  # outside an A/B test
    after = [sample(n, **labels) for n, labels in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 3, 1, 1]


def test_published_lists_count_by_source_and_variant_with_their_latency() -> None:
    sensor = PrometheusSensor()
    latency_count = "nowplaying_event_to_recommendation_seconds_count"
    before = (
        sample("nowplaying_recommendations_total", source=STORED_LIST),
        sample("nowplaying_recommendations_total", source="model"),
        sample("nowplaying_variant_lists_total", variant="v-lists"),
        sample(latency_count),
        sample("nowplaying_event_to_recommendation_seconds_sum"),
    )
    sensor.on_list_published(STORED_LIST, None, 0.25)
    sensor.on_list_published("model", "v-lists", 0.5)
    sensor.on_list_published("model", None, None)  # no Kafka timestamp: no latency
    after = (
        sample("nowplaying_recommendations_total", source=STORED_LIST),
        sample("nowplaying_recommendations_total", source="model"),
        sample("nowplaying_variant_lists_total", variant="v-lists"),
        sample(latency_count),
        sample("nowplaying_event_to_recommendation_seconds_sum"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 2, 1, 2, 0.75]


def test_batches_dead_letters_retries_round_trips_and_lag() -> None:
    sensor = PrometheusSensor()
    batch_sum = sample("nowplaying_batch_events_sum")
    letters = sample("nowplaying_dead_letters_total", reason="invalid_json")
    retries = sample("nowplaying_retries_total", dependency="redis")
    trips = sample("nowplaying_redis_roundtrip_seconds_count", operation="apply")
    sensor.on_batch(37)
    sensor.on_dead_letter("invalid_json")
    sensor.on_retry("redis")
    sensor.on_redis_roundtrip("apply", 0.001)
    sensor.on_consumer_lag("play-events-sensor", 3, 42)
    assert sample("nowplaying_batch_events_sum") == batch_sum + 37
    assert sample("nowplaying_dead_letters_total", reason="invalid_json") == letters + 1
    assert sample("nowplaying_retries_total", dependency="redis") == retries + 1
    assert sample("nowplaying_redis_roundtrip_seconds_count", operation="apply") == trips + 1
    lag = {"topic": "play-events-sensor", "partition": "3"}
    assert sample("nowplaying_consumer_lag_messages", **lag) == 42


@pytest.mark.parametrize("up", [False, True])
def test_dependency_up_is_a_zero_one_gauge(up: bool) -> None:
    PrometheusSensor().on_dependency_up("kafka", up)
    assert sample("nowplaying_dependency_up", dependency="kafka") == (1.0 if up else 0.0)


def test_counting_sensor_counts_and_a_difference_is_what_happened_between() -> None:
    sensor = CountingSensor()
    sensor.on_batch(3)
    sensor.on_event_applied(START, False, None)
    before = sensor.counts.copy()
    sensor.on_batch(4)
    sensor.on_event_applied(SKIP, True, None)
    sensor.on_dead_letter("invalid_json")
    sensor.on_dead_letter("invalid_json")
    sensor.on_list_published(STORED_LIST, None, None)
    sensor.on_list_published("model", None, 0.1)
    total, since = sensor.counts, sensor.counts.since(before)
    assert (total.messages, total.applied, total.duplicates) == (7, 1, 1)
    assert (since.messages, since.applied, since.duplicates) == (4, 0, 1)
    assert since.dead_letters == Counter(invalid_json=2)
    assert (since.published, since.republished) == (2, 1)
    assert before.messages == 3 and not before.dead_letters  # the copy did not move


def test_sensors_hand_every_fact_to_each_sensor_in_order() -> None:
    first, second = RecordingSensor(), RecordingSensor()
    sensors: list[PipelineSensor] = [first, NullSensor(), second]
    fan = Sensors(*sensors)
    fan.on_batch(2)
    fan.on_event_applied(START, False, "a")
    fan.on_dead_letter("invalid_schema")
    fan.on_list_published("popular", "a", 0.5)
    fan.on_retry("kafka")
    fan.on_dependency_up("kafka", False)
    fan.on_redis_roundtrip("write", 0.002)
    fan.on_consumer_lag("t", 0, 5)
    assert (
        first.calls
        == second.calls
        == [
            ("batch", 2),
            ("event_applied", "e-1", False, "a"),
            ("dead_letter", "invalid_schema"),
            ("list_published", "popular", "a", 0.5),
            ("retry", "kafka"),
            ("dependency_up", "kafka", False),
            ("redis_roundtrip", "write", 0.002),
            ("consumer_lag", "t", 0, 5),
        ]
    )
