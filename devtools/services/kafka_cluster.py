"""A Kafka cluster on loopback: N KRaft nodes (3 by default), each broker and controller in one
process, all of them voters of the controller quorum.

:func:`plan_nodes` decides each node's id, ports and folders (pure; unit-tested);
:class:`KafkaCluster` runs one :class:`devtools.services.kafka_broker.KafkaBroker` per node with
the shared voters and cluster id, so every node can be killed and restarted on its own. Topics
get ``replication_factor = min(3, nodes)`` replicas by default (the internal ones too) and
``min.insync.replicas = min(2, replicas)``.

``python -m devtools.services cluster up|down|status`` runs the cluster of
:meth:`devtools.services.layout.Layout.kafka_cluster`; tests start private ones on free ports
(``tests/support/services.py``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devtools.paths import CACHE_DIR
from devtools.services.kafka_broker import KafkaBroker
from devtools.services.kafka_config import new_cluster_id
from devtools.services.kafka_dist import Say, quiet
from devtools.services.processes import ServiceError, log_tail, port_open

#: Nodes of the local cluster: three voters survive the loss of any one.
CLUSTER_SIZE: Final = 3
#: Each node's heap, and only the quick JIT tier: three JVMs share two cores, and a node
#: starts in about half the time with C1 alone (they serve development, not benchmarks).
CLUSTER_HEAP: Final = "-Xms128m -Xmx512m -XX:TieredStopAtLevel=1"
#: The default ports: brokers on base, base+1, ...; controllers CONTROLLER_OFFSET above them.
CONTROLLER_OFFSET: Final = 100
CLUSTER_ID_FILE: Final = "cluster.id"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node of a cluster: its id, client (broker) port, controller port and folders."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    log_dir: Path


def default_ports(base_port: int, size: int = CLUSTER_SIZE) -> tuple[list[int], list[int]]:
    """(broker ports, controller ports): ``base_port + i`` and ``base_port + 100 + i``."""
    if size < 1:
        raise ValueError("a cluster has at least one node")
    last = base_port + CONTROLLER_OFFSET + size - 1
    if base_port < 1 or last > 65535:
        raise ValueError(f"ports {base_port}..{last} are not all TCP ports")
    brokers = [base_port + i for i in range(size)]
    return brokers, [port + CONTROLLER_OFFSET for port in brokers]


def plan_nodes(
    base_dir: Path,
    ports: Sequence[int],
    controller_ports: Sequence[int],
    *,
    log_dir: Path | None = None,
) -> list[NodeSpec]:
    """Node ``i`` (ids from 1) gets ``ports[i-1]``, ``controller_ports[i-1]``, data under
    ``base_dir/node-i`` and its log under ``log_dir/node-i`` (default: the data folder)."""
    if len(ports) != len(controller_ports) or not ports:
        raise ValueError("one broker port and one controller port per node, at least one node")
    every = [*ports, *controller_ports]
    if len(set(every)) != len(every):
        raise ValueError(f"the nodes' ports must all differ: {every}")
    base = Path(base_dir).absolute()
    logs = Path(log_dir).absolute() if log_dir is not None else None
    return [
        NodeSpec(
            node_id=i,
            port=port,
            controller_port=controller_port,
            data_dir=base / f"node-{i}",
            log_dir=(logs or base) / f"node-{i}",
        )
        for i, (port, controller_port) in enumerate(zip(ports, controller_ports, strict=True), 1)
    ]


def voters_of(nodes: Sequence[NodeSpec]) -> dict[int, int]:
    """The controller quorum: every node, node id -> controller port."""
    return {node.node_id: node.controller_port for node in nodes}


class KafkaCluster:
    """``len(ports)`` KRaft nodes on 127.0.0.1 with data and config under ``base_dir``.

    ``start()`` launches every stopped node at once (no node answers before a quorum of
    controllers runs) and waits until each answers and every broker is registered;
    ``stop()`` is a controlled shutdown of all (data kept), ``kill()`` SIGKILLs them all.
    ``node(i)`` is node ``i``'s :class:`KafkaBroker`: ``kill()`` one, then ``start()`` it (or
    the cluster, which starts the stopped nodes) with its data and ``wait_ready()`` until it
    has rejoined. The cluster id is kept in ``base_dir/cluster.id`` so that a node formatted
    later (its folder deleted, then ``start()`` of the cluster) joins the same cluster.
    """

    def __init__(
        self,
        base_dir: Path | str,
        ports: Sequence[int],
        controller_ports: Sequence[int],
        *,
        log_dir: Path | str | None = None,
        cache_dir: Path | str = CACHE_DIR,
        heap_opts: str = CLUSTER_HEAP,
        replication_factor: int | None = None,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.specs = plan_nodes(
            self.base_dir,
            ports,
            controller_ports,
            log_dir=Path(log_dir) if log_dir is not None else None,
        )
        self.replication_factor = replication_factor or min(CLUSTER_SIZE, len(self.specs))
        voters = voters_of(self.specs)
        self.nodes = [
            KafkaBroker(
                spec.port,
                spec.controller_port,
                spec.data_dir,
                log_dir=spec.log_dir,
                cache_dir=cache_dir,
                heap_opts=heap_opts,
                extra_properties=extra_properties,
                node_id=spec.node_id,
                quorum_voters=voters,
                replication_factor=self.replication_factor,
            )
            for spec in self.specs
        ]

    @property
    def bootstrap(self) -> str:
        """Every broker's ``host:port``, comma-separated (``NP_KAFKA_BOOTSTRAP_SERVERS``)."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def size(self) -> int:
        return len(self.nodes)

    def node(self, node_id: int) -> KafkaBroker:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in this cluster")

    def running(self) -> list[KafkaBroker]:
        return [node for node in self.nodes if node.is_running()]

    def is_running(self) -> bool:
        """True when every node runs."""
        return len(self.running()) == self.size

    def describe(self) -> str:
        return f"Kafka cluster of {self.size} KRaft nodes, bootstrap {self.bootstrap}"

    def start(self, timeout: float = 120.0, *, say: Say = quiet) -> None:
        """Start every node that is not running and wait until the whole cluster is ready."""
        stopped = [node for node in self.nodes if not node.is_running()]
        busy = [
            port
            for node in stopped
            for port in (node.port, node.controller_port)
            if port_open(port)
        ]
        if busy:
            raise ServiceError(f"ports {busy} are in use by other processes")
        cluster_id = self.cluster_id()
        for node in stopped:
            node.cluster_id = cluster_id
            say(f"node {node.node_id}: starting {node.describe()}")
            node.launch(say=say)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every node answers with an active controller and sees all brokers."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(max(1.0, deadline - time.monotonic()))
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                brokers = self.nodes[0].describe_cluster().get("brokers", [])
                seen = sorted(int(b["broker_id"]) for b in brokers if not b.get("is_fenced"))
                if seen == [node.node_id for node in self.nodes]:
                    return
                last = f"registered brokers {seen}"
            except Exception as exc:  # kafka-python raises many types while nodes join
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        tails = "\n".join(
            f"--- node {node.node_id}\n{log_tail(node.log_file, 15)}" for node in self.nodes
        )
        raise ServiceError(f"the cluster was not ready within {timeout:.0f}s ({last})\n{tails}")

    def stop(self, timeout: float = 45.0) -> None:
        """Controlled shutdown of every node at once (data kept): one by one, the last nodes
        would wait for a controller quorum that has already gone."""
        with ThreadPoolExecutor(max_workers=self.size) as pool:
            for done in [pool.submit(node.stop, timeout) for node in self.nodes]:
                done.result()

    def kill(self) -> None:
        """SIGKILL every node, as a power cut would (data kept)."""
        for node in self.nodes:
            node.kill()

    def cluster_id(self) -> str:
        """The cluster's id: the saved one, else a formatted node's, else a new one (saved)."""
        saved = self.base_dir / CLUSTER_ID_FILE
        if saved.exists():
            return saved.read_text(encoding="ascii").strip()
        for spec in self.specs:
            found = formatted_cluster_id(spec.data_dir / "data")
            if found:
                break
        else:
            found = new_cluster_id()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(found + "\n", encoding="ascii")
        return found


def formatted_cluster_id(log_dir: Path) -> str | None:
    """The ``cluster.id`` of a formatted log folder (its ``meta.properties``), else None."""
    try:
        text = (log_dir / "meta.properties").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^cluster\.id=(\S+)$", text, re.M)
    return match.group(1) if match else None
