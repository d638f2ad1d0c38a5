"""Redis faults against the real worker, the real broker and a PRIVATE Redis server.

1. Redis stopped for 10 s mid-replay, restarted with its data: the worker waits and retries
   with backoff (readiness false, retries counted), commits no offset of an event it could not
   apply, and resumes; the full invariant holds.
2. Redis restarted EMPTY mid-replay: sessions restart from the next event, no crash loop, the
   worker turns ready again and every track start still gets a list.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nowplaying.clients import redis_client
from nowplaying.events import PlayEvent, parse_play_event
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from streams.replay import interleave
from tests.support.faults import (
    CommitWatcher,
    assert_healthy,
    check_after_state_loss,
    print_counts,
    read_partition_values,
    readiness,
    starts_of,
    triggers_of,
    wait_all_committed,
    wait_until,
    worker_mid_replay,
)
from tests.support.pipeline import (
    TopicReader,
    check_invariant,
    real_session_events,
)
from tests.support.services import RedisServer, free_port

pytestmark = pytest.mark.slow

OUTAGE_S = 10.0
RATE = 250.0  # events/s: a 120-session replay lasts ~16 s, so the outage falls mid-replay


@pytest.fixture
def on_private_redis(
    worker_settings: Callable[..., Settings], private_redis: Callable[..., RedisServer]
) -> tuple[RedisServer, Settings]:
    """A private Redis (the one the test stops or wipes) and a worker's settings using it."""
    redis = private_redis()
    return redis, worker_settings(redis_url=redis.url, retry_initial_seconds=0.1)


def test_redis_stopped_10s_mid_replay_then_restarted_loses_nothing(
    on_private_redis: tuple[RedisServer, Settings], tmp_path: Path
) -> None:
    redis, settings = on_private_redis
    events = list(interleave(real_session_events(settings, 120, skip=1000), 60, seed=11))
    live = worker_mid_replay(settings, events, tmp_path / "worker.log", rate=RATE, lists_before=300)
    with live as (worker, recs, replay):
        redis.stop(save=True)  # SHUTDOWN SAVE: the snapshot is exactly what was applied
        shutil.copy(redis.data_dir / "dump.rdb", tmp_path / "at-stop.rdb")
        stopped_at, stopped_wall = time.monotonic(), time.time()
        watcher = CommitWatcher(settings)
        assert wait_until(lambda: readiness(worker)[0] == 503, 5), readiness(worker)
        assert "redis" in readiness(worker)[1]["failing"]
        watcher.poll_for(OUTAGE_S - (time.monotonic() - stopped_at))
        restarted_wall = time.time()
        retries = worker.metric_value("nowplaying_retries_total", 'dependency="redis"')
        redis_up = worker.metric_value("nowplaying_dependency_up", 'dependency="redis"')
        redis.start()

        sent = replay.join(120)
        recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=90)
        assert_healthy(worker)
        final_offsets = wait_all_committed(settings)
        with TopicReader(settings, settings.topic_dead_letters) as dlq:
            dead = dlq.read_all(timeout=5)
        retries_after = worker.metric_value("nowplaying_retries_total", 'dependency="redis"')
    report = check_invariant(settings, sent, [], recs.records, dead)
    lists_during_outage = sum(
        stopped_wall + 2.0 < r.timestamp / 1000 < restarted_wall for r in recs.records
    )
    unapplied = committed_but_not_applied(settings, watcher.highest, tmp_path / "at-stop.rdb")
    print_counts(
        "Redis stopped 10 s",
        report,
        produced=len(sent),
        redis_retries=int(retries_after),
        lists_during_outage=lists_during_outage,
        committed_during_outage=f"{watcher.highest} in {watcher.polls} polls",
        committed_at_end=final_offsets,
    )
    assert lists_during_outage == 0  # nothing is published before its state is stored (2 s grace)
    assert retries >= 3  # backoff from 0.1 s, capped at 1 s: several tries in 10 s
    assert redis_up == 0
    assert unapplied == [], f"offsets committed for events not applied: {unapplied[:5]}"
    assert watcher.polls >= 5
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))
    assert not dead
    assert worker.starts == 1


def committed_but_not_applied(
    settings: Settings, committed: dict[int, int], snapshot: Path
) -> list[str]:
    """Event ids below the committed offsets (as seen during the outage) that are NOT in the
    Redis snapshot taken when Redis stopped: each would be an event lost by a restart."""
    values = read_partition_values(settings, committed)
    server = RedisServer(free_port(), snapshot.parent / "snapshot-redis")
    server.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(snapshot, server.data_dir / "dump.rdb")
    server.start()
    try:
        client = redis_client(settings.model_copy(update={"redis_url": server.url}))
        keys = Keys(settings.redis_key_prefix)
        missing: list[str] = []
        for partition_values in values.values():
            for raw in partition_values:
                event = parse_play_event(raw)
                assert isinstance(event, PlayEvent)
                if not client.sismember(keys.session_seen(event.session_id), event.event_id):
                    missing.append(event.event_id)
        client.close()
        return missing
    finally:
        server.stop(save=False)


def test_redis_restarted_empty_sessions_restart_and_no_crash_loop(
    on_private_redis: tuple[RedisServer, Settings], tmp_path: Path
) -> None:
    redis, settings = on_private_redis
    events = list(interleave(real_session_events(settings, 100, skip=1200), 50, seed=12))
    live = worker_mid_replay(settings, events, tmp_path / "worker.log", rate=RATE, lists_before=250)
    with live as (worker, recs, replay):
        redis.stop(save=False)
        redis.wipe()
        assert wait_until(lambda: readiness(worker)[0] == 503, 5)
        time.sleep(2.0)
        redis.start()  # empty: the sessions' logs, dedupe sets, states and lists are gone

        sent = replay.join(120)
        recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=90)
        assert_healthy(worker)
        pid = worker.proc.pid if worker.proc else None
        time.sleep(3.0)  # a crash loop would show as an exit or a restart by now
        assert worker.running and worker.proc is not None and worker.proc.pid == pid
        errors = worker.log_text().count("Traceback")
    report = check_after_state_loss(settings, sent, recs.records)
    print_counts("Redis restarted empty", report, produced=len(sent), tracebacks_in_log=errors)
    assert report.sessions_restarted > 0  # the wipe really hit sessions mid-way
    assert report.events_in_redis < report.valid_events
    assert worker.starts == 1
