"""Latency and throughput from Kafka message timestamps.

The harness's producer stamps each play event with its produce time (``timestamp_ms``); the worker
publishes each recommendation with create time = publish time. Matching a recommendation to its
trigger event id gives the event-to-recommendation latency, in the broker's millisecond clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One output message: which event it answers and when it was published (epoch ms)."""

    event_id: str
    published_ms: int


def answered_event_id(value: bytes) -> str | None:
    """The event an output message answers: ``trigger_event_id`` (recommendations) or
    ``event_id`` (the passthrough copies events through)."""
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    found = data.get("trigger_event_id", data.get("event_id"))
    return found if isinstance(found, str) else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass(frozen=True)
class LatencyStats:
    matched: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def latencies_ms(produced_ms: Mapping[str, int], answers: Iterable[Answer]) -> list[float]:
    """Latency of each answer to a produced event (first answer per event only)."""
    seen: set[str] = set()
    out: list[float] = []
    for a in answers:
        sent = produced_ms.get(a.event_id)
        if sent is None or a.event_id in seen:
            continue
        seen.add(a.event_id)
        out.append(float(a.published_ms - sent))
    return out


def latency_stats(values: Iterable[float]) -> LatencyStats:
    ordered = sorted(values)
    if not ordered:
        return LatencyStats(0, None, None, None, None)
    return LatencyStats(
        matched=len(ordered),
        p50_ms=percentile(ordered, 50),
        p95_ms=percentile(ordered, 95),
        p99_ms=percentile(ordered, 99),
        max_ms=ordered[-1],
    )


def sustained_rate(
    answers: Sequence[Answer], events_per_answer: float, min_span_ms: int = 1
) -> float:
    """Events/s the process sustained: answers between its first and last publish, scaled by how
    many input events each answer stands for (2.0 when only track starts are answered and every
    track has a start and an end)."""
    if len(answers) < 2:
        return 0.0
    times = sorted(a.published_ms for a in answers)
    span_ms = max(times[-1] - times[0], min_span_ms)
    return (len(times) - 1) * events_per_answer * 1000.0 / span_ms
