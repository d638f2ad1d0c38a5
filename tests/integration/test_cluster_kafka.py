"""The real worker on a real 3-broker Kafka cluster (KRaft, every node a voter), topics with
replication factor 3 and ``min.insync.replicas`` 2: mid-replay the leader of the busiest
``play-events`` partition is SIGKILLed, kept down, then restarted with its data. The worker
carries on without a restart; the replay's producer rides through; every valid event is
applied exactly once and in order, and every track start has its list, on the output topic and
in Redis. Afterwards the restarted broker is back in every ISR, the three replicas of each
partition hold the same record batches, and every batch was written by an idempotent producer
(the replay's kafka-python one on ``play-events``, the worker's aiokafka one on the lists).
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError

from nowplaying.settings import Settings
from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
from tests.support.faults import (
    assert_healthy,
    check_stored_lists,
    print_counts,
    starts_of,
    triggers_of,
    wait_all_committed,
    wait_until,
    worker_mid_replay,
)
from tests.support.kafka_cluster import (
    PartitionState,
    busiest_partition,
    describe_partitions,
    diverging_replicas,
    effective_topic_configs,
    leaders_of,
    our_topics,
    replica_batches,
    short_isrs,
)
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    real_session_events,
)
from tests.support.services import KafkaCluster, free_port

pytestmark = pytest.mark.slow

RATE = 250.0
PARTITIONS = 6  # two partitions led by each broker
LISTS_ON_TWO_BROKERS = 100  # published after the leadership moved, before the restart
DURABLE_CONFIGS = {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}


def test_leader_of_the_busiest_partition_sigkilled_mid_replay_loses_nothing(
    kafka_cluster: KafkaCluster, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    fields: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_cluster.bootstrap,
        "topic_replication_factor": 3,
        "topic_partitions": PARTITIONS,
        "model_dir": shared_small_model(),
        "worker_metrics_port": free_port(),
        "worker_session_timeout_seconds": 6.0,
        "retry_max_seconds": 1.0,
    }
    settings: Settings = settings_factory(**fields)
    assert_durable_topics(settings)
    events = list(interleave(real_session_events(settings, 110, skip=3000), 40, seed=23))
    live = worker_mid_replay(settings, events, tmp_path / "worker.log", rate=RATE, lists_before=150)
    with live as (worker, recs, replay):
        partition, leader, records_then = busiest_partition(settings)
        controller = kafka_cluster.nodes[0].describe_cluster()["controller_id"]
        victim = kafka_cluster.node(leader)
        lists_before = len(recs.records)
        victim.kill()
        killed_at = time.monotonic()

        def moved() -> bool:
            try:
                now = leaders_of(settings, settings.topic_play_events).get(partition, -1)
            except KafkaError:  # asked the dead broker: it is still in the metadata
                return False
            return now not in (leader, -1)

        # Down until the leadership has moved (the broker session timeout, and a controller
        # election first when the victim was the active controller), then until the worker
        # has published more lists on the two brokers left.
        assert hold_down(worker, recs, moved, timeout=60), "the leadership never moved"
        moved_after = time.monotonic() - killed_at
        new_leader = leaders_of(settings, settings.topic_play_events)[partition]
        lists_at_move = len(recs.records)

        def more_lists() -> bool:
            return len(recs.records) - lists_at_move >= LISTS_ON_TWO_BROKERS

        assert hold_down(worker, recs, more_lists, timeout=60), "no lists from the brokers left"
        down_for = time.monotonic() - killed_at
        lists_while_down = len(recs.records) - lists_before
        victim.start()
        kafka_cluster.wait_ready()
        restarted_at = time.monotonic()

        sent = replay.join(180)
        recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=120)
        all_lists_after = time.monotonic() - restarted_at
        assert_healthy(worker)
        committed = wait_all_committed(settings, timeout=60)
        rejoined = wait_until(lambda: not short_isrs(settings, 3), timeout=60, interval=0.5)
        written = [settings.topic_play_events, settings.topic_recommendations]
        in_step = wait_until(
            lambda: not any(diverging_replicas(kafka_cluster, t) for t in written), timeout=30
        )
        with TopicReader(settings, settings.topic_dead_letters) as dlq:
            dead = dlq.read_all(timeout=5)
        kafka_retries = worker.metric_value("nowplaying_retries_total", 'dependency="kafka"')
    report = check_invariant(settings, sent, [], recs.records, dead)
    stored_lists = check_stored_lists(settings, sent, recs.records)
    producers = {
        "play-events": producer_ids(kafka_cluster, settings.topic_play_events),
        "lists": producer_ids(kafka_cluster, settings.topic_recommendations),
    }
    print_counts(
        "3-broker cluster, partition leader SIGKILLed",
        report,
        lists_in_redis=stored_lists,
        produced=len(sent),
        killed_node=f"{leader} (leader of play-events/{partition}, {records_then} records)",
        active_controller_then=controller,
        new_leader=new_leader,
        leadership_moved_after_s=round(moved_after, 1),
        down_for_s=round(down_for, 1),
        lists_before_the_kill=lists_before,
        lists_while_it_was_down=lists_while_down,
        all_lists_within_s_of_the_restart=round(all_lists_after, 1),
        kafka_publish_retries=int(kafka_retries),
        committed_at_end=committed,
        batches_by_producer_id=producers,
    )
    assert report.valid_events == len({e.event_id for e in sent})
    assert sum(committed.values()) == len(sent), "play-events holds a record twice or lost one"
    assert report.lists_distinct == report.track_starts == len(starts_of(sent)) == stored_lists
    assert not dead
    assert worker.starts == 1
    assert rejoined, f"under-replicated after the restart: {short_isrs(settings, 3)}"
    assert in_step, {t: diverging_replicas(kafka_cluster, t) for t in written}
    for topic, counts in producers.items():
        assert counts and min(counts) >= 0, f"{topic}: a non-idempotent producer wrote {counts}"


def producer_ids(cluster: KafkaCluster, topic: str) -> dict[int, int]:
    """Producer id -> record batches of ``topic`` (all replicas of all partitions)."""
    counts: Counter[int] = Counter()
    for by_node in replica_batches(cluster, topic).values():
        for batches in by_node.values():
            counts.update(b.producer_id for b in batches)
    return dict(counts)


def hold_down(
    worker: WorkerProcess, recs: TopicReader, done: Callable[[], bool], timeout: float
) -> bool:
    """Wait until ``done()`` (False after ``timeout`` s), reading the lists published meanwhile
    and checking all along that the worker runs and answers /healthz."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        assert worker.running, f"the worker exited after the kill:\n{worker.log_tail()}"
        assert worker.get("/healthz")[0] == 200
        recs.poll(0.5)
    return True


def assert_durable_topics(settings: Settings) -> None:
    """``nowplaying topics`` (through the fixture) made every topic durable on the cluster.

    Each broker learns of a new topic a moment after its creation, and each question goes to
    any broker: the checks wait (a little) for an answer that knows the topics."""
    topics = our_topics(settings)
    described: dict[str, list[PartitionState]] = {}

    def replicated() -> bool:
        described.clear()
        described.update(describe_partitions(settings, topics))
        return all(len(described.get(t, [])) == PARTITIONS for t in topics)

    assert wait_until(replicated, timeout=30), described
    for topic in topics:
        assert all(len(s.replicas) == 3 and len(s.isr) == 3 for s in described[topic])
        configured = functools.partial(has_configs, settings, topic, DURABLE_CONFIGS)
        assert wait_until(configured, timeout=10), effective_topic_configs(settings, topic)
    leaders = {s.leader for s in described[settings.topic_play_events]}
    assert leaders == {1, 2, 3}, f"leaders {leaders}: every broker should lead a partition"


def has_configs(settings: Settings, topic: str, wanted: dict[str, str]) -> bool:
    configs = effective_topic_configs(settings, topic)
    return all(configs.get(name) == value for name, value in wanted.items())
