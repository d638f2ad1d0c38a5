"""The Kafka topics of nowplaying, created explicitly (the broker does not auto-create).

``nowplaying topics`` runs :func:`run`; the worker, the test fixtures and ``docker compose``'s
``init`` service call :func:`ensure_topics`, which is idempotent: topics that already exist
are left as they are (a partition count or replication factor that differs from the settings
is reported).

Durability: every topic gets ``NP_TOPIC_REPLICATION_FACTOR`` replicas (3 on a cluster),
``min.insync.replicas`` from :attr:`Settings.min_insync_replicas` (default min(2, replicas): an
``acks=all`` write is on two brokers before it succeeds, and one broker may be down without
stopping writes) and no unclean leader election (an out-of-sync replica never becomes leader,
so an acknowledged write is never lost). Every producer of nowplaying uses ``acks=all``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from nowplaying.clients import kafka_admin
from nowplaying.settings import Settings

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

log = logging.getLogger(__name__)

DAY_MS: Final = 24 * 3600 * 1000
TOPIC_ALREADY_EXISTS: Final = 36  # Kafka protocol error code

#: Retention per topic role: play events a week (enough to replay a session's history after
#: an outage), recommendations a day (only the latest list matters), dead letters two weeks
#: (time to inspect and re-drive them), exposure outcomes two weeks (an experiment's readout).
RETENTION_MS: Final = {
    "play_events": 7 * DAY_MS,
    "recommendations": DAY_MS,
    "dead_letters": 14 * DAY_MS,
    "outcomes": 14 * DAY_MS,
}


@dataclass(frozen=True, slots=True)
class TopicStatus:
    """What :func:`ensure_topics` found or did for one topic."""

    name: str
    created: bool
    partitions: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def topic_specs(settings: Settings) -> dict[str, dict[str, Any]]:
    """kafka-python ``create_topics`` specs (name -> options) of the four topics."""
    names = {
        "play_events": settings.topic_play_events,
        "recommendations": settings.topic_recommendations,
        "dead_letters": settings.topic_dead_letters,
        "outcomes": settings.topic_outcomes,
    }
    return {
        name: {
            "num_partitions": settings.topic_partitions,
            "replication_factor": settings.topic_replication_factor,
            "configs": topic_configs(settings, role),
        }
        for role, name in names.items()
    }


def topic_configs(settings: Settings, role: str) -> dict[str, str]:
    """The topic-level configs of one topic role (``play_events``, ``recommendations``,
    ``dead_letters``): cleanup, retention and the durability settings."""
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(RETENTION_MS[role]),
        "min.insync.replicas": str(settings.min_insync_replicas),
        "unclean.leader.election.enable": "false",
    }


def ensure_topics(
    settings: Settings, admin: KafkaAdminClient | None = None, *, timeout_ms: int = 30000
) -> list[TopicStatus]:
    """Create the missing topics and wait until every partition has a leader.

    Uses ``admin`` when given (the caller keeps it open), else a short-lived admin client.
    Returns one :class:`TopicStatus` per topic; problems are data (``status.error``), and only
    an unreachable cluster raises (kafka-python's own errors).
    """
    own = admin is None
    client = kafka_admin(settings) if admin is None else admin
    try:
        specs = topic_specs(settings)
        response = client.create_topics(specs, timeout_ms=timeout_ms, raise_errors=False)
        codes = {t["name"]: (t["error_code"], t.get("error_message")) for t in response["topics"]}
        good = [name for name, (code, _) in codes.items() if code in (0, TOPIC_ALREADY_EXISTS)]
        client.wait_for_topics(good, timeout_ms=timeout_ms)
        described = {t["name"]: t for t in client.describe_topics(good) if not t["error_code"]}
        return [_status(name, codes[name], described.get(name), settings) for name in specs]
    finally:
        if own:
            client.close()


def _status(
    name: str,
    code_and_message: tuple[int, str | None],
    described: dict[str, Any] | None,
    settings: Settings,
) -> TopicStatus:
    code, message = code_and_message
    if code not in (0, TOPIC_ALREADY_EXISTS):
        return TopicStatus(name, False, None, f"error {code}: {message or 'create failed'}")
    if described is None:
        return TopicStatus(name, code == 0, None)
    partitions = len(described["partitions"])
    replicas = {len(p["replica_nodes"]) for p in described["partitions"]}
    notes = []
    if partitions != settings.topic_partitions:
        notes.append(f"has {partitions} partitions, settings say {settings.topic_partitions}")
    if replicas and replicas != {settings.topic_replication_factor}:
        shown = "/".join(str(r) for r in sorted(replicas))
        notes.append(
            f"has replication factor {shown}, settings say {settings.topic_replication_factor}"
        )
    note = "; ".join(notes) + " (left unchanged)" if notes else None
    return TopicStatus(name, code == 0, partitions, note)


def delete_topics(settings: Settings, admin: KafkaAdminClient | None = None) -> None:
    """Delete the topics where they exist (tests clean up with this)."""
    own = admin is None
    client = kafka_admin(settings) if admin is None else admin
    try:
        client.delete_topics(list(topic_specs(settings)), raise_errors=False)
    finally:
        if own:
            client.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying topics``: create the topics, print what happened; 1 on any problem."""
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python's connection chatter
    try:
        statuses = ensure_topics(settings)
    except Exception as exc:  # kafka-python raises several types when the cluster is down
        print(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}")
        return 1
    for status in statuses:
        what = "created" if status.created else "exists"
        detail = f" ({status.error})" if status.error else ""
        print(f"{status.name}: {what}, {status.partitions or '?'} partitions{detail}")
    return 0 if all(status.ok for status in statuses) else 1
