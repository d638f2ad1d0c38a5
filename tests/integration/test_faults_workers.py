"""Scale-out and crash: two workers in one consumer group on a 4-partition topic.

Worker A runs alone; worker B joins mid-replay (partitions move to it); later A is killed with
SIGKILL (its partitions move back to B after the group's session timeout, and B redoes A's
uncommitted batches). Every event is applied exactly once, every track start has a list and
the only duplicates are identical re-publications.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nowplaying.settings import Settings
from streams.replay import interleave
from tests.support.faults import (
    assert_healthy,
    print_counts,
    starts_of,
    triggers_of,
    wait_all_committed,
    wait_until,
    worker_mid_replay,
)
from tests.support.pipeline import TopicReader, WorkerProcess, check_invariant, real_session_events

pytestmark = pytest.mark.slow

RATE = 100.0  # ~55 s of replay: B's start-up (~15 s) and A's death both fall inside it


def test_second_worker_joins_mid_replay_then_the_first_is_sigkilled(
    worker_settings: Callable[..., Settings],
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    settings = worker_settings(topic_partitions=4)
    settings_b = settings.model_copy(update={"worker_metrics_port": free_tcp_port()})
    events = list(interleave(real_session_events(settings, 140, skip=1600), 60, seed=14))
    worker_b = WorkerProcess(settings_b, tmp_path / "worker-b.log")
    live = worker_mid_replay(
        settings, events, tmp_path / "worker-a.log", rate=RATE, lists_before=100
    )
    with live as (worker_a, recs, replay), worker_b:
        assert wait_until(lambda: events_of(worker_b) > 0, 60), worker_b.log_tail()
        shared_from = len(recs.records)
        recs.read_until(lambda rs: len(rs) >= shared_from + 150, timeout=60, settle=0)
        a_events = events_of(worker_a)
        b_events_before_kill = events_of(worker_b)
        assert worker_a.kill() == -9

        sent = replay.join(120)
        recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=120)
        assert_healthy(worker_b)
        committed = wait_all_committed(settings, timeout=60)
        with TopicReader(settings, settings.topic_dead_letters) as dlq:
            dead = dlq.read_all(timeout=5)
        b_events = events_of(worker_b)
        b_duplicates = worker_b.metric_value("nowplaying_duplicate_events_total")
    report = check_invariant(settings, sent, [], recs.records, dead)
    print_counts(
        "two workers, one SIGKILLed",
        report,
        produced=len(sent),
        events_seen_by_A=int(a_events),
        events_seen_by_B=int(b_events),
        redeliveries_deduped_by_B=int(b_duplicates),
        committed_at_end=committed,
    )
    assert 0 < b_events_before_kill < b_events  # B shared the work, then took over A's share
    assert a_events > 0
    assert a_events + b_events >= len(sent)  # redeliveries make it more, never fewer
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))
    assert not dead


def events_of(worker: WorkerProcess) -> float:
    return worker.metric_value("nowplaying_events_total")
