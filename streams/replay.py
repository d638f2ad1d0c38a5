"""``nowplaying replay``: produce a data set's sessions as play events, like real traffic.

Many sessions play at once: ``concurrent`` sessions are active, their events interleave (each
session's own events stay in order) and a new session joins as soon as one finishes. Pacing is
either a fixed ``rate`` (events per second, token bucket) or event time (``speedup``: the
synthesized gaps between a session's events, divided by the factor). Each event's ``ts`` is the
wall-clock time it is sent, so the worker sees realistic event times. Records are keyed by
``user_id`` (one listener's events stay in one partition, in order).

:func:`interleave`, :func:`event_time_schedule` and :func:`replay_events` are the building
blocks; tests and benchmarks use them directly.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tqdm import tqdm

from models.datasets import DataError, load_sessions
from models.labelled_sessions import session_events
from nowplaying.clients import kafka_producer
from nowplaying.events import PlayEvent
from nowplaying.settings import Settings

log = logging.getLogger(__name__)

E = TypeVar("E")
#: A record to produce as is: (key, value) bytes, e.g. a deliberately malformed message.
RawRecord = tuple[bytes | None, bytes]


@dataclass(slots=True)
class ReplaySummary:
    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    failed: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        """Achieved events per second."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def describe(self) -> str:
        types = ", ".join(f"{k} {v}" for k, v in sorted(self.by_type.items()))
        return (
            f"produced {self.events} events ({types}) from {self.sessions} sessions in "
            f"{self.elapsed_s:.1f} s: {self.rate:.0f} events/s; {self.failed} failed"
        )


def interleave(sessions: Iterable[Sequence[E]], concurrent: int, seed: int = 0) -> Iterator[E]:
    """Events of many sessions at once: at each step a random active session plays its next
    event; when one ends, the next session joins. Order within each session is kept."""
    rng = random.Random(seed)
    pending = iter(sessions)
    active: list[Iterator[E]] = []

    def join() -> bool:
        for session in pending:
            if session:
                active.append(iter(session))
                return True
        return False

    while len(active) < concurrent and join():
        pass
    while active:
        i = rng.randrange(len(active))
        nxt = next(active[i], None)
        if nxt is None:
            active[i] = active[-1]
            active.pop()
            join()
            continue
        yield nxt


def event_time_schedule(
    sessions: Iterable[Sequence[PlayEvent]], concurrent: int, speedup: float
) -> Iterator[tuple[float, PlayEvent]]:
    """(seconds since the start, event) in time order: sessions keep their own event-time gaps
    divided by ``speedup``; ``concurrent`` play at once, a new one joining when one ends."""
    pending = iter(sessions)
    heap: list[tuple[float, int, int, Sequence[PlayEvent], float]] = []
    seq = 0

    def join(at: float) -> None:
        nonlocal seq
        for session in pending:
            if session:
                heapq.heappush(heap, (at, seq, 0, session, at))
                seq += 1
                return

    for _ in range(concurrent):
        join(0.0)
    while heap:
        due, _, i, session, joined = heapq.heappop(heap)
        yield due, session[i]
        if i + 1 < len(session):
            nxt = joined + (session[i + 1].ts - session[0].ts) / 1000 / speedup
            heapq.heappush(heap, (max(nxt, due), seq, i + 1, session, joined))
            seq += 1
        else:
            join(due)


def replay_events(
    settings: Settings,
    events: Iterable[PlayEvent | RawRecord | tuple[float, PlayEvent]],
    *,
    rate: float | None = None,
    limit: int | None = None,
    producer: Any = None,
    progress: bool = False,
    total: int | None = None,
    sent: list[PlayEvent] | None = None,
    clock: Callable[[], float] = time.time,
) -> ReplaySummary:
    """Produce ``events`` to ``settings.topic_play_events`` and wait until all are acknowledged.

    Items are play events (paced at ``rate`` per second; None or 0: as fast as possible),
    ``(seconds since start, event)`` pairs from :func:`event_time_schedule` (paced by their
    offsets), or raw ``(key, value)`` records (produced as is). Play events get ``ts`` = the
    wall-clock send time; each one sent is appended to ``sent`` when given. ``producer`` is a
    kafka-python ``KafkaProducer`` (default: one from :func:`nowplaying.clients.kafka_producer`,
    closed at the end).
    """
    own = producer is None
    prod = kafka_producer(settings) if own else producer
    summary = ReplaySummary()
    sessions: set[str] = set()
    failures: list[BaseException] = []
    bar = tqdm(total=limit or total, unit="ev", disable=not progress, smoothing=0.1)
    start = time.monotonic()
    try:
        for i, item in enumerate(events):
            if limit is not None and i >= limit:
                break
            due = _due(item, i, rate)
            if due is not None:
                _sleep_until(start + due)
            key, value, kind = _record(item, clock, sent, sessions)
            future = prod.send(settings.topic_play_events, key=key, value=value)
            future.add_errback(failures.append)
            summary.events += 1
            summary.by_type[kind] += 1
            bar.update(1)
        prod.flush()
    finally:
        bar.close()
        if own:
            prod.close()
    summary.elapsed_s = time.monotonic() - start
    summary.sessions = len(sessions)
    summary.failed = len(failures)
    if failures:
        log.error("%d records failed, first: %r", len(failures), failures[0])
    return summary


def _due(item: object, index: int, rate: float | None) -> float | None:
    """When (seconds after the start) the item is due, or None for as soon as possible."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], float):
        return item[0]
    return index / rate if rate else None


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _record(
    item: PlayEvent | RawRecord | tuple[float, PlayEvent],
    clock: Callable[[], float],
    sent: list[PlayEvent] | None,
    sessions: set[str],
) -> tuple[bytes | None, bytes, str]:
    if isinstance(item, tuple) and isinstance(item[0], float):
        item = item[1]
    if isinstance(item, PlayEvent):
        event = item.model_copy(update={"ts": int(clock() * 1000)})
        if sent is not None:
            sent.append(event)
        sessions.add(event.session_id)
        value = event.model_dump_json(exclude_none=True).encode()
        return event.user_id.encode(), value, event.event_type
    key, value = item
    return key, value, "raw"


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``nowplaying replay``."""
    logging.getLogger("kafka").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    try:
        sessions, description = load_sessions(settings, args.data, args.synthetic, args.sessions)
    except DataError as exc:
        print(f"nowplaying replay: {exc}")
        return 2
    print(f"replaying {description}")
    per_session = [session_events(s) for s in sessions]
    total = sum(len(e) for e in per_session)
    items: Iterable[PlayEvent | tuple[float, PlayEvent]]
    if args.speedup:
        items = event_time_schedule(per_session, args.concurrent, args.speedup)
        rate = None
    else:
        items = interleave(per_session, args.concurrent, seed=args.seed)
        rate = args.rate
    summary = replay_events(
        settings,
        items,
        rate=rate,
        limit=args.limit,
        progress=not args.no_progress,
        total=total,
    )
    print(summary.describe())
    return 0 if summary.failed == 0 else 1
