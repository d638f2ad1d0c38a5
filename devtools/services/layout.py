"""Where the default instances (``make up``) live: ports and folders, from the environment.

``NP_KAFKA_PORT`` (9092), ``NP_KAFKA_CONTROLLER_PORT`` (9093), ``NP_REDIS_PORT`` (6380),
``NP_STATE_DIR`` (``var``: ``kafka/``, ``redis/``, ``kafka-cluster/``, ``log/``), ``NP_CACHE_DIR``
(``.cache``: the broker's jars); folders default to the repository's, whatever the working
directory. The 3-node cluster (``cluster up``): ``NP_KAFKA_CLUSTER_PORT`` (19092: brokers on
19092-19094, controllers on 19192-19194) and ``NP_KAFKA_CLUSTER_HEAP_OPTS`` (each node's JVM
options, default ``-Xms128m -Xmx512m -XX:TieredStopAtLevel=1``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.paths import CACHE_DIR, VAR_DIR
from devtools.services.kafka_broker import KafkaBroker
from devtools.services.kafka_cluster import CLUSTER_HEAP, KafkaCluster, default_ports
from devtools.services.processes import ServiceError
from devtools.services.redis_server import RedisServer


@dataclass(frozen=True, slots=True)
class Layout:
    """The default instances' ports and folders."""

    kafka_port: int
    kafka_controller_port: int
    redis_port: int
    state_dir: Path
    cache_dir: Path
    kafka_cluster_port: int = 19092
    kafka_cluster_heap: str = CLUSTER_HEAP

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Layout:
        env = os.environ if env is None else env
        return cls(
            kafka_port=_port(env, "NP_KAFKA_PORT", 9092),
            kafka_controller_port=_port(env, "NP_KAFKA_CONTROLLER_PORT", 9093),
            redis_port=_port(env, "NP_REDIS_PORT", 6380),
            state_dir=Path(env.get("NP_STATE_DIR") or VAR_DIR).absolute(),
            cache_dir=Path(env.get("NP_CACHE_DIR") or CACHE_DIR).absolute(),
            kafka_cluster_port=_port(env, "NP_KAFKA_CLUSTER_PORT", 19092),
            kafka_cluster_heap=env.get("NP_KAFKA_CLUSTER_HEAP_OPTS") or CLUSTER_HEAP,
        )

    def kafka(self) -> KafkaBroker:
        return KafkaBroker(
            self.kafka_port,
            self.kafka_controller_port,
            self.state_dir / "kafka",
            log_dir=self.state_dir / "log",
            cache_dir=self.cache_dir,
        )

    def kafka_cluster(self) -> KafkaCluster:
        """The local 3-node cluster: data under ``kafka-cluster/node-N``, logs under
        ``log/kafka-cluster/node-N``."""
        try:
            ports, controller_ports = default_ports(self.kafka_cluster_port)
        except ValueError as exc:
            raise ServiceError(f"NP_KAFKA_CLUSTER_PORT={self.kafka_cluster_port}: {exc}") from None
        return KafkaCluster(
            self.state_dir / "kafka-cluster",
            ports,
            controller_ports,
            log_dir=self.state_dir / "log" / "kafka-cluster",
            cache_dir=self.cache_dir,
            heap_opts=self.kafka_cluster_heap,
        )

    def redis(self) -> RedisServer:
        return RedisServer(
            self.redis_port, self.state_dir / "redis", log_dir=self.state_dir / "log"
        )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ServiceError(f"{name}={raw!r} is not a TCP port")
    return int(raw)
