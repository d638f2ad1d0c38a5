"""The stream worker end to end: ``nowplaying worker`` as a real process, the real broker, the
real Redis and a real model trained by ``nowplaying train`` on the real sessions.

Every test checks the pipeline's invariant (:func:`tests.support.pipeline.check_invariant`):
each valid event applied exactly once, the Redis features equal to the offline ones, a list for
every track start (identical copies only), K distinct unplayed tracks sorted by score, every
malformed message in the dead-letter topic with a reason.
"""

from __future__ import annotations

import functools
import json
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from models.registry import LATEST
from nowplaying.clients import redis_client
from nowplaying.events import PLAY_EVENT_ADAPTER, PlayEvent
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from streams.replay import RawRecord, interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
from tests.support.faults import BackgroundReplay, starts_of, wait_until
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    distinct_triggers,
    nowplaying_exe,
    produce,
    real_session_events,
    worker_env,
)
from tests.support.readiness import readiness_document
from tests.support.services import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """A registry holding one small real model, made by ``nowplaying train`` on real sessions
    (once per test process)."""
    return shared_small_model()


@pytest.fixture
def make_settings(worker_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """:func:`worker_settings` with a lag sample every second."""
    return functools.partial(worker_settings, worker_lag_interval_seconds=1.0)


def read_outputs(
    settings: Settings, n_starts: int, n_dead: int, timeout: float, lists_per_start: int = 1
) -> tuple[list[Any], list[Any]]:
    """All recommendation and dead-letter records once every start has its list(s)."""
    with TopicReader(settings, settings.topic_recommendations) as recs:
        recs.read_until(
            lambda rs: distinct_triggers(rs) >= n_starts and len(rs) >= n_starts * lists_per_start,
            timeout=timeout,
        )
        rec_records = list(recs.records)
    with TopicReader(settings, settings.topic_dead_letters) as dlq:
        dlq.read_until(lambda rs: len(rs) >= n_dead, timeout=30, settle=0.5)
        dlq_records = list(dlq.records)
    return rec_records, dlq_records


def span_seconds(records: Sequence[Any]) -> float:
    stamps = [r.timestamp for r in records]
    return (max(stamps) - min(stamps)) / 1000 if stamps else 0.0


def test_300_real_sessions_get_a_list_for_every_track_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    sessions = real_session_events(settings, 300)
    # Produced before the worker starts, so the worker runs flat out: its rate is measured.
    sent, summary = produce(settings, interleave(sessions, concurrent=100, seed=1))
    starts = starts_of(sent)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        recs, dlq = read_outputs(settings, len(starts), 0, timeout=180)
        events_total = worker.metric_value("nowplaying_events_total")
        batches = worker.metric_value("nowplaying_batch_events_count")
        caught_up = wait_until(
            lambda: (
                "nowplaying_consumer_lag_messages{" in worker.metrics()
                and worker.metric_value("nowplaying_consumer_lag_messages") == 0
            ),
            30.0,
        )
    report = check_invariant(settings, sent, [], recs, dlq)
    rate = len(sent) / max(span_seconds(recs), 1e-3)
    print(f"\n300 real sessions: {report}")
    print(f"worker: {len(sent)} events in {batches:.0f} batches, ~{rate:.0f} events/s")
    assert summary.sessions == 300 and report.sessions == 300
    assert report.lists_distinct == len(starts) == report.track_starts
    assert not dlq
    assert events_total == len(sent)
    assert caught_up  # the lag gauge reached 0 on every partition


#: One malformed message of each kind (non-JSON, missing fields, wrong types, unknown
#: event_type, oversize, not an object, future timestamp), each with a unique marker.
def malformed(i: int, template: PlayEvent) -> bytes:
    base = json.loads(template.model_dump_json(exclude_none=True))
    base["event_id"] = f"bad-{i}"
    kind = i % 8
    if kind == 0:
        return f"{{not json {i}".encode()
    if kind == 1:
        return json.dumps({"event_type": "track_start", "event_id": f"bad-{i}"}).encode()
    if kind == 2:
        return json.dumps(base | {"ts": f"yesterday-{i}"}).encode()
    if kind == 3:
        return json.dumps(base | {"event_type": "pause"}).encode()
    if kind == 4:
        return json.dumps(base | {"padding": "x" * 20000}).encode()
    if kind == 5:
        return json.dumps([i, "not an object"]).encode()
    if kind == 6:
        return json.dumps(base | {"ts": int(time.time() * 1000) + 3 * 86_400_000}).encode()
    return bytes([0xFF, 0xFE, i % 256]) + b"\x00binary"


def with_malformed(
    events: Sequence[PlayEvent], share: float, seed: int
) -> tuple[list[PlayEvent | RawRecord], list[bytes]]:
    rng = random.Random(seed)
    out: list[PlayEvent | RawRecord] = []
    bad: list[bytes] = []
    for ev in events:
        if rng.random() < share:
            payload = malformed(len(bad), ev)
            bad.append(payload)
            out.append((ev.user_id.encode(), payload))
        out.append(ev)
    return out, bad


def test_malformed_messages_are_dead_lettered_and_valid_events_still_processed(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    sessions = real_session_events(settings, 60, skip=300)
    items, bad = with_malformed(list(interleave(sessions, 30, seed=2)), share=0.05, seed=2)
    with WorkerProcess(settings, tmp_path / "worker.log"):
        sent, _ = produce(settings, items)
        recs, dlq = read_outputs(settings, len(starts_of(sent)), len(bad), timeout=120)
    report = check_invariant(settings, sent, bad, recs, dlq)
    print(f"\n5% malformed: {report}")
    assert len(bad) / (len(bad) + len(sent)) == pytest.approx(0.05, abs=0.02)
    assert report.dead_letters == len(bad)
    expected = {
        "invalid_json",
        "invalid_schema",
        "unknown_event_type",
        "payload_too_large",
        "timestamp_in_future",
    }
    assert set(report.dead_letter_reasons) == expected


def snapshot(settings: Settings, session_ids: set[str]) -> dict[str, Any]:
    """Every key of these sessions, with its value (logs, dedupe sets, states, stored lists)."""
    keys = Keys(settings.redis_key_prefix)
    client = redis_client(settings)
    try:
        out: dict[str, Any] = {}
        for sid in sorted(session_ids):
            out[f"{sid}:log"] = client.lrange(keys.session_log(sid), 0, -1)
            out[f"{sid}:seen"] = client.smembers(keys.session_seen(sid))
            out[f"{sid}:state"] = client.get(keys.session_state(sid))
            out[f"{sid}:recs"] = client.hgetall(keys.session_recs(sid))
        return out
    finally:
        client.close()


def stamped(events: Sequence[PlayEvent]) -> list[PlayEvent]:
    """The events with ``ts`` = now (+1 ms each, in order), like a replay would send them."""
    now = int(time.time() * 1000)
    return [e.model_copy(update={"ts": now + i}) for i, e in enumerate(events)]


def as_raw(events: Sequence[PlayEvent], copies: int = 1) -> list[RawRecord]:
    """Each event as the exact record bytes, ``copies`` times in a row."""
    out: list[RawRecord] = []
    for e in events:
        record = (e.user_id.encode(), e.model_dump_json(exclude_none=True).encode())
        out.extend([record] * copies)
    return out


def test_every_event_twice_changes_nothing_and_republishes_identical_lists(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    events = stamped(list(interleave(real_session_events(settings, 60, skip=400), 30, seed=3)))
    n_starts = len(starts_of(events))
    session_ids = {e.session_id for e in events}
    # each copy right after its original: most pairs share a batch
    produce(settings, as_raw(events, copies=2))
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        read_outputs(settings, n_starts, 0, timeout=120, lists_per_start=2)
        before = snapshot(settings, session_ids)
        # and once more, after everything was processed: a late redelivery
        produce(settings, as_raw(events))
        recs, dlq = read_outputs(settings, n_starts, 0, timeout=120, lists_per_start=3)
        duplicates = worker.metric_value("nowplaying_duplicate_events_total")
    after = snapshot(settings, session_ids)
    report = check_invariant(settings, events * 3, [], recs, dlq)
    print(f"\nevery event three times: {report}")
    assert after == before
    assert report.lists_published == 3 * n_starts
    assert duplicates == 2 * len(events)


def wait_for_lists(settings: Settings, at_least: int, timeout: float) -> None:
    with TopicReader(settings, settings.topic_recommendations) as recs:
        recs.read_until(lambda rs: len(rs) >= at_least, timeout=timeout, settle=0)


def test_sigkill_mid_replay_and_restart_applies_every_event_exactly_once(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    events = list(interleave(real_session_events(settings, 120, skip=500), 60, seed=4))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    replay = BackgroundReplay(settings, events, rate=1500).start()
    wait_for_lists(settings, 400, timeout=90)  # the worker is busy mid-stream
    assert worker.kill() == -9
    worker.start()
    sent = replay.join(120)
    assert len(sent) == len(events)
    try:
        recs, dlq = read_outputs(settings, len(starts_of(sent)), 0, timeout=120)
    finally:
        worker.terminate()
    report = check_invariant(settings, sent, [], recs, dlq)
    print(f"\nSIGKILL and restart: {report}")
    assert report.lists_distinct == report.track_starts


def test_sigterm_finishes_the_batch_and_commits_so_a_restart_redoes_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    events = list(interleave(real_session_events(settings, 80, skip=700), 40, seed=5))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    replay = BackgroundReplay(settings, events, rate=1500).start()
    wait_for_lists(settings, 300, timeout=90)
    assert worker.terminate() == 0
    assert "closing Redis" in worker.log_text()
    sent = replay.join(120)
    worker.start()
    try:
        recs, dlq = read_outputs(settings, len(starts_of(sent)), 0, timeout=120)
        duplicates = worker.metric_value("nowplaying_duplicate_events_total")
    finally:
        worker.terminate()
    report = check_invariant(settings, sent, [], recs, dlq)
    print(f"\nSIGTERM and restart: {report}")
    assert duplicates == 0  # everything processed before the stop was committed
    assert report.lists_published == report.track_starts  # nothing published twice


def test_worker_serves_the_model_from_nowplaying_train_and_reports_readiness(
    make_settings: Callable[..., Settings],
    model_dir: Path,
    private_redis: Callable[..., RedisServer],
    tmp_path: Path,
) -> None:
    redis = private_redis()
    settings = make_settings(redis_url=redis.url, retry_initial_seconds=0.05)
    version = (model_dir / LATEST).read_text().strip()
    sessions = real_session_events(settings, 20, skip=900)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        ready = readiness_document(*worker.get("/readyz"))
        assert ready.ready and ready.model_version == version and ready.variants is None
        assert set(ready.dependencies) == {"redis", "kafka", "model"}
        assert (
            ready.dependencies["model"].detail == f"version {version} (registry latest: {version})"
        )
        assert f'version="{version}"' in worker.metrics()
        redis.stop(save=True)
        ready = readiness_document(*worker.get("/readyz"))
        assert ready.failing == ["redis"] and ready.model_version == version
        assert ready.dependencies["redis"].detail.startswith("PING failed")
        sent, _ = produce(settings, interleave(sessions, 10, seed=6))
        retries_seen = wait_until(
            lambda: worker.metric_value("nowplaying_retries_total", 'dependency="redis"') > 0,
            30.0,
        )
        redis.start()
        recs, dlq = read_outputs(settings, len(starts_of(sent)), 0, timeout=60)
        assert worker.get("/readyz")[0] == 200
    report = check_invariant(settings, sent, [], recs, dlq)
    print(f"\nRedis down then up: {report}")
    assert retries_seen


def test_nowplaying_replay_produces_sessions_keyed_by_user_in_order(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory()
    started_ms = int(time.time() * 1000)
    done = subprocess.run(
        [
            nowplaying_exe(),
            "replay",
            "--sessions",
            "12",
            "--concurrent",
            "5",
            "--rate",
            "2000",
            "--limit",
            "300",
            "--no-progress",
        ],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "produced 300 events" in done.stdout
    with TopicReader(settings, settings.topic_play_events) as reader:
        records = reader.read_until(lambda rs: len(rs) >= 300, timeout=30, settle=0.5)
    assert len(records) == 300
    real = real_session_events(settings, 12)
    originals = {ev.event_id: ev for events in real for ev in events}
    session_order = {events[0].session_id: [ev.event_id for ev in events] for events in real}
    by_session: dict[str, list[tuple[int, int, PlayEvent]]] = {}
    for r in records:
        ev = PLAY_EVENT_ADAPTER.validate_json(r.value)
        assert r.key == ev.user_id.encode()
        assert ev.ts >= started_ms
        original = originals[ev.event_id]
        assert ev.model_copy(update={"ts": original.ts}) == original  # only ts is restamped
        by_session.setdefault(ev.session_id, []).append((r.partition, r.offset, ev))
    assert 5 <= len(by_session) <= 12
    for sid, items in by_session.items():
        assert len({p for p, _, _ in items}) == 1  # one user, one partition
        ordered = [ev.event_id for _, _, ev in sorted(items, key=lambda x: x[1])]
        assert ordered == session_order[sid][: len(ordered)]  # in the session's own order
