"""What tests of a multi-broker Kafka cluster ask it: who leads which partition, which partition
is the busiest, whether every in-sync replica set is full again, the durability configs of a
topic, and what each broker holds on disk (the record batches of each replica, with the id of
the producer that wrote them). The cluster itself is :class:`devtools.services.KafkaCluster`
(the ``kafka_cluster`` fixture of ``tests/integration/conftest.py``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kafka.admin import ConfigResource, ConfigResourceType

from nowplaying.clients import kafka_admin
from nowplaying.settings import Settings
from tests.support.faults import end_offsets
from tests.support.services import KafkaCluster

#: Kafka's record batch (magic 2): base offset (int64) and length (int32) lead it; the CRC
#: (uint32) is at byte 17 and the producer id (int64, -1 for a non-idempotent producer) at 43.
_BATCH_HEAD: Final = 12
_CRC_AT: Final = 17
_PRODUCER_ID_AT: Final = 43
_MIN_BATCH: Final = 61


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition as the controller describes it."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def describe_partitions(settings: Settings, topics: list[str]) -> dict[str, list[PartitionState]]:
    """Leader, replicas and in-sync replicas of every partition of ``topics``, as the broker
    asked sees them: a topic it does not know yet (metadata reaches each broker a moment after
    creation) is left out."""
    admin = kafka_admin(settings, request_timeout_ms=10000)
    try:
        described = admin.describe_topics(topics)
    finally:
        admin.close()
    return {
        t["name"]: sorted(
            (
                PartitionState(
                    partition=int(p["partition_index"]),
                    leader=int(p["leader_id"]),
                    replicas=tuple(p["replica_nodes"]),
                    isr=tuple(p["isr_nodes"]),
                )
                for p in t["partitions"]
            ),
            key=lambda state: state.partition,
        )
        for t in described
        if not t["error_code"]
    }


def our_topics(settings: Settings) -> list[str]:
    return [settings.topic_play_events, settings.topic_recommendations, settings.topic_dead_letters]


def busiest_partition(settings: Settings) -> tuple[int, int, int]:
    """(partition, its leader's node id, its records) of the ``play-events`` partition holding
    the most records now."""
    ends = end_offsets(settings)
    partition = max(ends, key=lambda p: (ends[p], -p))
    states = describe_partitions(settings, [settings.topic_play_events])
    leader = next(s.leader for s in states[settings.topic_play_events] if s.partition == partition)
    return partition, leader, ends[partition]


def leaders_of(settings: Settings, topic: str) -> dict[int, int]:
    """Partition -> leader node id (-1: none) of ``topic``."""
    states = describe_partitions(settings, [topic]).get(topic, [])
    return {s.partition: s.leader for s in states}


def short_isrs(settings: Settings, replicas: int) -> list[str]:
    """``topic/partition`` of every partition of our topics with fewer than ``replicas``
    in-sync replicas, and ``topic`` for one not known (empty: fully replicated)."""
    described = describe_partitions(settings, our_topics(settings))
    unknown = [topic for topic in our_topics(settings) if not described.get(topic)]
    return unknown + [
        f"{topic}/{s.partition}"
        for topic, states in described.items()
        for s in states
        if len(s.isr) < replicas
    ]


def effective_topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    """The topic's effective configs (name -> value) as a broker reports them; empty when the
    broker asked does not know the topic (yet)."""
    admin = kafka_admin(settings, request_timeout_ms=10000)
    try:
        answer: dict[str, Any] = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    except Exception:  # kafka-python raises the broker's error for an unknown topic
        return {}
    finally:
        admin.close()
    entries = answer.get("topic", {}).get(topic, {})
    return {name: str(entry["value"]) for name, entry in entries.items()}


@dataclass(frozen=True, slots=True)
class Batch:
    """One record batch of a replica's log: where it starts, who wrote it, its checksum."""

    base_offset: int
    producer_id: int
    crc: int


def record_batches(partition_dir: Path) -> list[Batch]:
    """Every complete record batch in a partition's log segments (``*.log``), in offset order."""
    batches: list[Batch] = []
    for segment in sorted(partition_dir.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + _MIN_BATCH <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + _BATCH_HEAD + length > len(data):
                break  # a batch still being written
            (crc,) = struct.unpack_from(">I", data, pos + _CRC_AT)
            (producer_id,) = struct.unpack_from(">q", data, pos + _PRODUCER_ID_AT)
            batches.append(Batch(base_offset, producer_id, crc))
            pos += _BATCH_HEAD + length
    return batches


def replica_batches(cluster: KafkaCluster, topic: str) -> dict[int, dict[int, list[Batch]]]:
    """partition -> node id -> that node's replica's batches, read from each node's log dir."""
    out: dict[int, dict[int, list[Batch]]] = {}
    for node in cluster.nodes:
        for folder in (node.data_dir / "data").glob(f"{topic}-*"):
            suffix = folder.name[len(topic) + 1 :]
            if suffix.isdigit():  # not a deleted topic's "<topic>-<p>.<id>-delete"
                out.setdefault(int(suffix), {})[node.node_id] = record_batches(folder)
    return out


def diverging_replicas(cluster: KafkaCluster, topic: str) -> list[int]:
    """Partitions of ``topic`` whose replicas do not hold the same batches on every node."""
    return [
        partition
        for partition, by_node in sorted(replica_batches(cluster, topic).items())
        if len(by_node) != cluster.size or len({tuple(b) for b in by_node.values()}) != 1
    ]
