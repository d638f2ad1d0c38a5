"""A Kafka node's configuration: ``server.properties`` from the template, SASL/SCRAM, cluster id.

Each node runs in KRaft combined mode (broker + controller) on loopback. The defaults describe
the single-node development broker; ``node_id``, ``quorum_voters`` and ``replication_factor``
describe one node of a cluster of several (each node's controller port, by node id), which all
share one cluster id (:mod:`devtools.services.kafka_cluster`).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Final

from devtools.paths import KAFKA_INFRA

SCRAM_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-512")
#: The inter-broker SCRAM user; a broker with SCRAM users must have it.
SCRAM_ADMIN_USER: Final = "admin"
TEMPLATE: Final = KAFKA_INFRA / "server.properties.template"


def quorum_voters_property(voters: Mapping[int, int]) -> str:
    """``controller.quorum.voters`` for controllers on loopback: node id -> controller port."""
    return ",".join(f"{node}@127.0.0.1:{port}" for node, port in sorted(voters.items()))


def min_insync_replicas(replication_factor: int) -> int:
    """The ``min.insync.replicas`` that goes with a replication factor: 2 of 3 (a write survives
    one broker lost, and one broker may be down without stopping writes), 1 without replicas."""
    return min(2, replication_factor)


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    version: str,
    node_id: int = 1,
    quorum_voters: Mapping[int, int] | None = None,
    replication_factor: int = 1,
    scram_users: Mapping[str, str] | None = None,
    extra_properties: Mapping[str, str] | None = None,
) -> str:
    """The node's ``server.properties`` from ``infra/kafka/server.properties.template``.

    ``quorum_voters`` (node id -> controller port) defaults to this node alone.
    ``replication_factor`` is the default of new topics and of the internal ones (consumer
    offsets, transactions); ``min.insync.replicas`` follows from it.
    """
    voters = dict(quorum_voters or {node_id: controller_port})
    if voters.get(node_id) != controller_port:
        raise ValueError(f"quorum_voters must map node {node_id} to its controller port")
    if not 1 <= replication_factor <= len(voters):
        raise ValueError(
            f"replication_factor {replication_factor} needs 1 to {len(voters)} (the nodes)"
        )
    template = Template(TEMPLATE.read_text(encoding="utf-8"))
    text = template.substitute(
        kafka_version=version,
        node_id=node_id,
        quorum_voters=quorum_voters_property(voters),
        port=port,
        controller_port=controller_port,
        listener_name="SASL_PLAINTEXT" if scram_users else "PLAINTEXT",
        data_dir=data_dir,
        replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas(replication_factor),
    )
    extra: dict[str, str] = {}
    if scram_users:
        extra.update(scram_properties(scram_users))
    extra.update(extra_properties or {})
    if extra:
        text += "\n# Instance-specific settings\n"
        text += "".join(f"{key}={value}\n" for key, value in extra.items())
    return text


def scram_properties(users: Mapping[str, str]) -> dict[str, str]:
    """The SASL/SCRAM listener settings; the broker logs in to its peers as ``admin``."""
    password = users[SCRAM_ADMIN_USER]
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{SCRAM_ADMIN_USER}" password="{password}";'
    )
    props = {
        "sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISMS[0],
    }
    for mechanism in SCRAM_MECHANISMS:
        props[f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config"] = jaas
    return props


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 bytes, no padding).

    Like Kafka's own ``Uuid.randomUuid``, never one starting with '-' (read as an option).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id
