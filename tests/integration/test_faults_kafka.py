"""Kafka faults against the real worker: a PRIVATE broker stopped for 10 s mid-replay and
restarted with its data. The worker (Faust/aiokafka consumer and producer) reconnects and
resumes without a restart of its own; the replay's producer rides through the outage; the
invariant holds over everything produced.
"""

from __future__ import annotations

import time
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
    worker_mid_replay,
)
from tests.support.pipeline import TopicReader, check_invariant, real_session_events
from tests.support.services import KafkaBroker

pytestmark = pytest.mark.slow

OUTAGE_S = 10.0
RATE = 300.0


def test_broker_stopped_10s_mid_replay_worker_reconnects_and_loses_nothing(
    worker_settings: Callable[..., Settings],
    private_kafka: Callable[..., KafkaBroker],
    tmp_path: Path,
) -> None:
    broker = private_kafka()
    settings = worker_settings(kafka_bootstrap_servers=broker.bootstrap)
    events = list(interleave(real_session_events(settings, 80, skip=1400), 40, seed=13))
    live = worker_mid_replay(settings, events, tmp_path / "worker.log", rate=RATE, lists_before=250)
    with live as (worker, recs, replay):
        lists_before = len(recs.records)
        broker.stop()
        down_at = time.monotonic()
        while time.monotonic() - down_at < OUTAGE_S:
            assert worker.running, (
                f"the worker exited while the broker was down:\n{worker.log_tail()}"
            )
            assert worker.get("/healthz")[0] == 200
            time.sleep(0.5)
        broker.start()
        restarted_at = time.monotonic()

        sent = replay.join(180)
        recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=120)
        resumed_after = time.monotonic() - restarted_at
        assert_healthy(worker)
        committed = wait_all_committed(settings, timeout=60)
        with TopicReader(settings, settings.topic_dead_letters) as dlq:
            dead = dlq.read_all(timeout=5)
        kafka_retries = worker.metric_value("nowplaying_retries_total", 'dependency="kafka"')
    report = check_invariant(settings, sent, [], recs.records, dead)
    print_counts(
        "Kafka broker stopped 10 s",
        report,
        produced=len(sent),
        lists_before_the_stop=lists_before,
        all_lists_within_s=round(resumed_after, 1),
        kafka_publish_retries=int(kafka_retries),
        committed_at_end=committed,
    )
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))
    assert report.lists_distinct > lists_before  # work was left for after the outage
    assert not dead
    assert worker.starts == 1
