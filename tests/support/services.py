"""Private Kafka brokers, Kafka clusters and Redis servers for tests that stop, kill or
reconfigure them.

The logic lives in :mod:`devtools.services` (the same code ``make up`` runs); this module
adds what tests need around it: free loopback ports and one-call constructors that put every
file of the instance under a test's temporary folder.

Typical fault test (the ``private_kafka`` / ``private_redis`` fixtures of
``tests/integration/conftest.py`` wrap these and stop the instances at teardown)::

    broker = private_kafka_broker(tmp_path / "kafka")
    broker.start()
    ...
    broker.stop()            # graceful; broker.kill() for a crash
    time.sleep(10)
    broker.start()           # same data folder: same topics, offsets, committed groups

    cluster = private_kafka_cluster(tmp_path / "cluster")   # 3 KRaft nodes, replication 3
    cluster.start()
    cluster.node(2).kill()   # SIGKILL one node; the other two carry on
    cluster.node(2).start()  # same data folder: it catches up and rejoins every ISR
    cluster.wait_ready()

    redis = private_redis_server(tmp_path / "redis")
    redis.start()
    redis.stop(save=True)    # snapshot kept; stop(save=False) or wipe() for an empty restart
    redis.start()
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

from devtools.services import (
    SCRAM_ADMIN_USER,
    SCRAM_MECHANISMS,
    KafkaBroker,
    KafkaCluster,
    Layout,
    RedisServer,
    ServiceError,
    port_open,
)

__all__ = [
    "SCRAM_ADMIN_USER",
    "SCRAM_MECHANISMS",
    "KafkaBroker",
    "KafkaCluster",
    "Layout",
    "RedisServer",
    "ServiceError",
    "free_port",
    "free_ports",
    "port_open",
    "private_kafka_broker",
    "private_kafka_cluster",
    "private_redis_server",
]

#: Private test brokers get a smaller heap than the shared one (several may run at once) and
#: only the quick JIT tier: on 2 busy cores that halves a start (~35 s -> ~17 s measured under
#: load); they serve fault tests, not benchmarks.
TEST_KAFKA_HEAP = "-Xms128m -Xmx512m -XX:TieredStopAtLevel=1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports that were free a moment ago (the OS picks them)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def private_kafka_broker(
    folder: Path,
    *,
    port: int | None = None,
    controller_port: int | None = None,
    scram_users: Mapping[str, str] | None = None,
    extra_properties: Mapping[str, str] | None = None,
) -> KafkaBroker:
    """A broker (not yet started) on free ports with data, config and log under ``folder``.

    It shares the jar cache of the project (``.cache/kafka``), so it starts in seconds.
    """
    ports = free_ports(2)
    return KafkaBroker(
        port or ports[0],
        controller_port or ports[1],
        folder,
        cache_dir=Layout.from_env().cache_dir,
        heap_opts=TEST_KAFKA_HEAP,
        scram_users=scram_users,
        extra_properties=extra_properties,
    )


def private_kafka_cluster(folder: Path, *, size: int = 3) -> KafkaCluster:
    """A cluster of ``size`` KRaft nodes (not yet started) on free ports, every file under
    ``folder`` (``node-N/``), each node with the small test heap; replication min(3, size)."""
    ports = free_ports(2 * size)
    return KafkaCluster(
        folder,
        ports[:size],
        ports[size:],
        cache_dir=Layout.from_env().cache_dir,
        heap_opts=TEST_KAFKA_HEAP,
    )


def private_redis_server(folder: Path, *, port: int | None = None) -> RedisServer:
    """A Redis server (not yet started) on a free port with snapshot, pid and log in ``folder``."""
    return RedisServer(port or free_port(), folder)
