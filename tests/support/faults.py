"""What the fault tests share: a replay running in the background while a fault is injected,
consumer-group offsets, readiness polling, the relaxed invariant after a Redis state loss,
and one printed line of counts per test.

Private services (a Kafka broker, a Redis server that a test stops or wipes) come from the
``private_kafka`` / ``private_redis`` fixtures (:mod:`tests.support.services`); the Redis
Cluster from :mod:`tests.support.cluster`; the SASL broker from :mod:`tests.support.sasl`.
The invariant itself is :func:`tests.support.pipeline.check_invariant`;
:func:`check_stored_lists` adds that every list published is the one kept in Redis.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from nowplaying.clients import kafka_admin, kafka_python_security_kwargs, redis_client
from nowplaying.events import PlayEvent, TrackStart
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from streams.replay import RawRecord, ReplaySummary, replay_events
from tests.support.pipeline import InvariantReport, TopicReader, WorkerProcess
from tests.support.redis_sessions import (
    distinct_by_session,
    session_records,
    state_is_fold_of,
    stored_sessions,
)


def starts_of(events: Iterable[PlayEvent]) -> set[str]:
    return {e.event_id for e in events if isinstance(e, TrackStart)}


def triggers_of(records: Iterable[Any]) -> set[str]:
    return {json.loads(r.value)["trigger_event_id"] for r in records}


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


# --- a replay in the background -----------------------------------------------------------------


@dataclass
class BackgroundReplay:
    """:func:`streams.replay.replay_events` in a thread (the ``nowplaying replay`` code path);
    ``join()`` returns what was sent. ``sent`` may be any list (e.g. one that keeps a sample).

    kafka-python's producer retries through a broker outage (up to its delivery timeout), so a
    replay may run across one."""

    settings: Settings
    items: Iterable[PlayEvent | RawRecord]
    rate: float
    sent: list[PlayEvent] = field(default_factory=list)
    summary: ReplaySummary | None = None
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> BackgroundReplay:
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.summary = replay_events(self.settings, self.items, rate=self.rate, sent=self.sent)
            if self.summary.failed:
                raise RuntimeError(f"{self.summary.failed} records could not be produced")
        except BaseException as exc:  # handed to the test by join()
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> list[PlayEvent]:
        assert self._thread is not None, "start() first"
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the replay did not finish in {timeout} s")
        if self.error is not None:
            raise AssertionError(f"the replay failed: {self.error!r}") from self.error
        return self.sent


@contextlib.contextmanager
def worker_mid_replay(
    settings: Settings,
    events: Sequence[PlayEvent],
    log_path: Path,
    *,
    rate: float,
    lists_before: int,
) -> Iterator[tuple[WorkerProcess, TopicReader, BackgroundReplay]]:
    """Start the worker, start replaying ``events`` at ``rate`` in the background, and yield
    once ``lists_before`` lists are out: the moment to inject a fault. The worker is stopped
    (SIGTERM) and the reader closed when the block ends."""
    worker = WorkerProcess(settings, log_path)
    with worker, TopicReader(settings, settings.topic_recommendations) as recs:
        assert_healthy(worker)
        replay = BackgroundReplay(settings, events, rate).start()
        recs.read_until(lambda rs: len(rs) >= lists_before, timeout=60, settle=0)
        yield worker, recs, replay


# --- Kafka offsets ------------------------------------------------------------------------------


def committed_offsets(settings: Settings) -> dict[int, int]:
    """The consumer group's committed offsets on ``play-events``, by partition."""
    admin = kafka_admin(settings, request_timeout_ms=5000)
    try:
        offsets = admin.list_group_offsets({settings.consumer_group: None})[settings.consumer_group]
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == settings.topic_play_events and meta.offset >= 0
    }


def end_offsets(settings: Settings) -> dict[int, int]:
    """The high watermarks of ``play-events``, by partition."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_servers,
        group_id=None,
        enable_auto_commit=False,
        **kafka_python_security_kwargs(settings),
    )
    try:
        parts = consumer.partitions_for_topic(settings.topic_play_events) or set()
        tps = [TopicPartition(settings.topic_play_events, p) for p in parts]
        return {tp.partition: int(offset) for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def wait_all_committed(settings: Settings, timeout: float = 30.0) -> dict[int, int]:
    """Wait until the group has committed every record of ``play-events``; the offsets."""
    ends = end_offsets(settings)
    done = wait_until(lambda: committed_offsets(settings) == ends, timeout, interval=0.5)
    committed = committed_offsets(settings)
    assert done, f"committed {committed}, end offsets {ends}"
    return committed


def read_partition_values(settings: Settings, below: Mapping[int, int]) -> dict[int, list[bytes]]:
    """The values of ``play-events`` records at offsets ``0 .. below[p]-1`` of each partition."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_servers,
        group_id=None,
        enable_auto_commit=False,
        **kafka_python_security_kwargs(settings),
    )
    out: dict[int, list[bytes]] = defaultdict(list)
    try:
        wanted = {p: n for p, n in below.items() if n > 0}
        consumer.assign([TopicPartition(settings.topic_play_events, p) for p in wanted])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 60
        while any(len(out[p]) < n for p, n in wanted.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read the committed prefix {wanted}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    if r.offset < wanted[tp.partition]:
                        out[tp.partition].append(bytes(r.value))
    finally:
        consumer.close()
    return out


class CommitWatcher:
    """Polls the group's committed offsets while a fault lasts; keeps the highest seen."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.highest: dict[int, int] = {}
        self.polls = 0

    def poll(self) -> dict[int, int]:
        current = committed_offsets(self.settings)
        for p, offset in current.items():
            self.highest[p] = max(offset, self.highest.get(p, -1))
        self.polls += 1
        return current

    def poll_for(self, seconds: float, interval: float = 1.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll()
            time.sleep(min(interval, max(0.0, end - time.monotonic())))


# --- the worker's health ------------------------------------------------------------------------


def readiness(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    try:
        status, body = worker.get("/readyz", timeout=3.0)
    except OSError as exc:
        return 0, {"error": str(exc)}
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"body": body}


def assert_healthy(worker: WorkerProcess, timeout: float = 30.0) -> None:
    """The worker process runs, answers /healthz and turns ready within ``timeout``."""
    assert worker.running, f"the worker exited:\n{worker.log_tail()}"
    assert worker.get("/healthz")[0] == 200
    ok = wait_until(lambda: readiness(worker)[0] == 200, timeout)
    assert ok, f"not ready after {timeout} s: {readiness(worker)}\n{worker.log_tail()}"


# --- after a Redis state loss -------------------------------------------------------------------


@dataclass
class StateLossReport:
    """Counts of :func:`check_after_state_loss`."""

    sessions: int = 0
    valid_events: int = 0
    sessions_restarted: int = 0  # sessions whose log no longer starts at their first event
    events_in_redis: int = 0
    track_starts: int = 0
    lists_distinct: int = 0
    lists_published: int = 0
    triggers_with_differing_copies: int = 0

    def __str__(self) -> str:
        return (
            f"{self.sessions} sessions ({self.sessions_restarted} restarted by the wipe), "
            f"{self.valid_events} valid events, {self.events_in_redis} in Redis after it; "
            f"{self.track_starts} track starts -> {self.lists_distinct} distinct lists "
            f"({self.lists_published} published, {self.triggers_with_differing_copies} "
            "recomputed after the wipe)"
        )


def check_after_state_loss(
    settings: Settings, valid_events: Sequence[PlayEvent], rec_records: Sequence[Any]
) -> StateLossReport:
    """The documented behaviour when Redis restarts EMPTY mid-replay:

    * each session's log is a contiguous suffix of its events (a session restarts from the
      first event applied after the wipe; events redelivered after it are applied again), and
      its state equals the offline fold of exactly that suffix;
    * every track_start still has at least one published list (a start redelivered after the
      wipe gets a recomputed list, so copies of one trigger may differ: counted, not hidden).
    """
    violations: list[str] = []
    report = StateLossReport()
    by_session = distinct_by_session(valid_events)
    report.sessions = len(by_session)
    report.valid_events = sum(len(events) for events in by_session.values())
    stored = stored_sessions(settings, list(by_session))
    for (sid, events), (log, state) in zip(by_session.items(), stored, strict=True):
        records = session_records(events)
        report.events_in_redis += len(log)
        if not log:
            continue
        start = len(records) - len(log)
        if start < 0 or records[start:] != log:
            violations.append(f"session {sid}: the log is not a suffix of its events")
            continue
        report.sessions_restarted += start > 0
        if not state_is_fold_of(state, events[start:]):
            violations.append(f"session {sid}: state differs from the fold of its stored log")
    copies: dict[str, set[bytes]] = defaultdict(set)
    for r in rec_records:
        copies[json.loads(r.value)["trigger_event_id"]].add(bytes(r.value))
    starts = starts_of(valid_events)
    report.track_starts = len(starts)
    report.lists_distinct = len(starts & set(copies))
    report.lists_published = len(rec_records)
    report.triggers_with_differing_copies = sum(len(v) > 1 for v in copies.values())
    violations += [f"track_start {t}: no list" for t in sorted(starts - set(copies))]
    violations += [f"list for unknown trigger {t}" for t in sorted(set(copies) - starts)]
    if violations:
        shown = "\n  ".join(violations[:10])
        raise AssertionError(f"{len(violations)} violations ({report}):\n  {shown}")
    return report


def check_stored_lists(
    settings: Settings, valid_events: Sequence[PlayEvent], rec_records: Sequence[Any]
) -> int:
    """Every valid ``track_start`` has its list in Redis too (the session's ``recs`` hash, by
    trigger event id), byte for byte the one published on the output topic, and Redis holds no
    other list. Returns how many lists Redis holds; raises ``AssertionError`` otherwise."""
    published: dict[str, set[bytes]] = defaultdict(set)
    for r in rec_records:
        published[json.loads(r.value)["trigger_event_id"]].add(bytes(r.value))
    starts_by_session: dict[str, set[str]] = defaultdict(set)
    for ev in valid_events:
        if isinstance(ev, TrackStart):
            starts_by_session[ev.session_id].add(ev.event_id)
    keys = Keys(settings.redis_key_prefix)
    client = redis_client(settings)
    try:
        pipe = client.pipeline(transaction=False)
        for sid in starts_by_session:
            pipe.hgetall(keys.session_recs(sid))
        replies = pipe.execute()
    finally:
        client.close()
    violations: list[str] = []
    stored = 0
    for (sid, starts), lists in zip(starts_by_session.items(), replies, strict=True):
        triggers = {k.decode(): bytes(v) for k, v in lists.items()}
        stored += len(triggers)
        violations += [f"session {sid}: no list in Redis for {t}" for t in starts - set(triggers)]
        violations += [
            f"session {sid}: a list for {t}, no such start" for t in set(triggers) - starts
        ]
        violations += [
            f"session {sid}: the list for {t} in Redis is not the one published"
            for t, value in triggers.items()
            if t in starts and published.get(t) != {value}
        ]
    if violations:
        shown = "\n  ".join(violations[:10])
        raise AssertionError(f"{len(violations)} stored-list violations:\n  {shown}")
    return stored


def print_counts(title: str, report: InvariantReport | StateLossReport, **extra: object) -> None:
    """One line a reader of the test output (and the report) can quote."""
    if isinstance(report, InvariantReport):
        extra = {"identical_republications": report.lists_published - report.lists_distinct} | extra
    more = "".join(f"; {k.replace('_', ' ')}: {v}" for k, v in extra.items())
    print(f"\n[{title}] {report}{more}", flush=True)
