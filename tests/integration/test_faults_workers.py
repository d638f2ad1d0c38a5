"""Scale-out and crash: two workers in one consumer group on a 4-partition topic.

Worker A runs alone; worker B joins mid-replay (partitions move to it); later A is killed with
SIGKILL (its partitions move back to B after the group's session timeout, and B redoes A's
uncommitted batches). Every event is applied exactly once and in order, every track start has a
list and the only duplicates are identical re-publications.

The timing of the rebalances decides whether a fetch is dropped mid-rebalance (a hole the gap
guard must rewind, see docs/operations.md "Ordering and fencing"), so one run proves little:
``make stress`` repeats the scenario ``STRESS_RUNS`` times (default 20; the ``stress`` marker,
not part of ``make test``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
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
#: How many times ``make stress`` runs the scenario.
STRESS_RUNS = int(os.environ.get("STRESS_RUNS", "20"))


def test_second_worker_joins_mid_replay_then_the_first_is_sigkilled(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    two_workers_one_sigkilled(settings_factory, free_tcp_port, tmp_path)


@pytest.mark.stress
@pytest.mark.parametrize("run", range(1, STRESS_RUNS + 1))
def test_two_workers_one_sigkilled_repeatedly(
    run: int,
    settings_factory: SettingsFactory,
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    two_workers_one_sigkilled(settings_factory, free_tcp_port, tmp_path, seed=14 + run)


def two_workers_one_sigkilled(
    settings_factory: SettingsFactory,
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
    seed: int = 14,
) -> None:
    settings = settings_factory(
        topic_partitions=4,
        model_dir=shared_small_model(),
        worker_metrics_port=free_tcp_port(),
        worker_session_timeout_seconds=6.0,
        retry_max_seconds=1.0,
    )
    settings_b = settings.model_copy(update={"worker_metrics_port": free_tcp_port()})
    events = list(interleave(real_session_events(settings, 140, skip=1600), 60, seed=seed))
    worker_b = WorkerProcess(settings_b, tmp_path / "worker-b.log")
    live = worker_mid_replay(
        settings, events, tmp_path / "worker-a.log", rate=RATE, lists_before=100
    )
    with live as (worker_a, recs, replay), worker_b:
        assert wait_until(lambda: events_of(worker_b) > 0, 60), worker_b.log_tail()
        shared_from = len(recs.records)
        recs.read_until(lambda rs: len(rs) >= shared_from + 150, timeout=60, settle=0)
        a_events = events_of(worker_a)
        a_gaps = worker_a.metric_value("nowplaying_offset_gaps_total")
        a_fenced = worker_a.metric_value("nowplaying_fenced_batches_total")
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
        b_gaps = worker_b.metric_value("nowplaying_offset_gaps_total")
        b_fenced = worker_b.metric_value("nowplaying_fenced_batches_total")
    report = check_invariant(settings, sent, [], recs.records, dead)
    print_counts(
        "two workers, one SIGKILLed",
        report,
        produced=len(sent),
        events_seen_by_A=int(a_events),
        events_seen_by_B=int(b_events),
        redeliveries_deduped_by_B=int(b_duplicates),
        committed_at_end=committed,
        gaps_rewound_by_A_B=(int(a_gaps), int(b_gaps)),
        fenced_batches_A_B=(int(a_fenced), int(b_fenced)),
    )
    assert 0 < b_events_before_kill < b_events  # B shared the work, then took over A's share
    assert a_events > 0
    assert a_events + b_events >= len(sent)  # redeliveries make it more, never fewer
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))
    assert not dead


def events_of(worker: WorkerProcess) -> float:
    return worker.metric_value("nowplaying_events_total")
