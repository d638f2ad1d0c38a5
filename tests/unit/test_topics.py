"""Topic specs and the durability settings of the topics we create (no broker involved; creating
them on a real broker and cluster is integration-tested)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from streams.topics import RETENTION_MS, TOPIC_ALREADY_EXISTS, ensure_topics, topic_specs
from tests.support.settings import isolated_settings


def test_a_cluster_topic_needs_two_in_sync_replicas_of_three() -> None:
    settings = isolated_settings(topic_replication_factor=3)
    specs = topic_specs(settings)
    assert list(specs) == [
        "play-events",
        "now-playing-recommendations",
        "play-events-dlq",
        "now-playing-outcomes",
    ]
    for spec in specs.values():
        assert spec["replication_factor"] == 3
        assert spec["configs"]["min.insync.replicas"] == "2"
        assert spec["configs"]["unclean.leader.election.enable"] == "false"
        assert spec["configs"]["cleanup.policy"] == "delete"
    assert specs["play-events"]["configs"]["retention.ms"] == str(RETENTION_MS["play_events"])
    assert specs["play-events-dlq"]["configs"]["retention.ms"] == str(RETENTION_MS["dead_letters"])


@pytest.mark.parametrize(("replicas", "insync"), [(1, "1"), (2, "2"), (3, "2"), (5, "2")])
def test_min_insync_replicas_default_to_two_or_fewer(replicas: int, insync: str) -> None:
    settings = isolated_settings(topic_replication_factor=replicas)
    assert settings.min_insync_replicas == int(insync)
    assert {s["configs"]["min.insync.replicas"] for s in topic_specs(settings).values()} == {insync}


def test_min_insync_replicas_can_be_set_up_to_the_replication_factor() -> None:
    settings = isolated_settings(topic_replication_factor=5, topic_min_insync_replicas=3)
    assert topic_specs(settings)["play-events"]["configs"]["min.insync.replicas"] == "3"
    with pytest.raises(ValidationError, match="exceeds topic_replication_factor"):
        isolated_settings(topic_replication_factor=1, topic_min_insync_replicas=2)


class DescribingAdmin:
    """kafka-python's admin surface that ensure_topics uses, answering for existing topics."""

    def __init__(self, partitions: int, replicas: int) -> None:
        self.partitions = partitions
        self.replicas = replicas

    def create_topics(self, specs: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"topics": [{"name": n, "error_code": TOPIC_ALREADY_EXISTS} for n in specs]}

    def wait_for_topics(self, names: list[str], **_: Any) -> None:
        pass

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        nodes = list(range(1, self.replicas + 1))
        partitions = [
            {"partition_index": i, "replica_nodes": nodes} for i in range(self.partitions)
        ]
        return [{"name": n, "error_code": 0, "partitions": partitions} for n in names]


def test_existing_topics_with_other_replication_are_reported_and_left_alone() -> None:
    settings = isolated_settings(topic_partitions=8, topic_replication_factor=3)
    assert all(s.ok for s in ensure_topics(settings, DescribingAdmin(8, 3)))
    statuses = ensure_topics(settings, DescribingAdmin(8, 1))
    assert [s.error for s in statuses] == [
        "has replication factor 1, settings say 3 (left unchanged)"
    ] * 4
    both = ensure_topics(settings, DescribingAdmin(4, 1))
    assert both[0].error == (
        "has 4 partitions, settings say 8; has replication factor 1, settings say 3 "
        "(left unchanged)"
    )
