"""The local development services: a real Apache Kafka broker and a real Redis server.

No containers: the broker is Apache Kafka from Maven Central (``infra/kafka/pom.xml`` pins it),
run by Java 17 in KRaft combined mode; Redis is Debian's ``redis-server``. This package is the
ONE place that knows how to fetch, configure, start, probe and stop them; ``make up`` /
``make down`` (through ``scripts/services.sh``) and the tests (``tests/support/services.py``)
both use it. Modules, one concern each:

``processes``     pid files, liveness, signals, ports, the up/down lock
``kafka_dist``    the pinned broker version and its jars (fetched once with Maven)
``kafka_config``  a node's ``server.properties`` (node id, voters, replication),
                  SASL/SCRAM, cluster ids
``kafka_broker``  :class:`KafkaBroker`: one node's process
``kafka_cluster`` :class:`KafkaCluster`: N nodes (3 by default) on loopback, every one a voter
``redis_server``  :class:`RedisServer`
``layout``        the default instances' ports and folders, from the environment
``cli``           ``python -m devtools.services {up|down|status|fetch} [kafka|redis|all]``,
                  ``python -m devtools.services cluster {up|down|status}``

Environment (all optional): ``NP_KAFKA_PORT`` (9092), ``NP_KAFKA_CONTROLLER_PORT`` (9093),
``NP_REDIS_PORT`` (6380), ``NP_STATE_DIR`` (``var``), ``NP_CACHE_DIR`` (``.cache``),
``NP_KAFKA_HEAP_OPTS`` (``-Xms256m -Xmx1g``); for the cluster ``NP_KAFKA_CLUSTER_PORT`` (19092)
and ``NP_KAFKA_CLUSTER_HEAP_OPTS``.

Private instances for tests: ``KafkaBroker(port, controller_port, data_dir).start()`` and
``RedisServer(port, data_dir).start()``, then ``stop()`` (graceful, keeps the data),
``kill()`` (SIGKILL) and ``start()`` again with the same folder; a private cluster:
``KafkaCluster(folder, ports, controller_ports).start()``, then ``cluster.node(i).kill()``,
``.start()`` and ``cluster.wait_ready()`` until it has rejoined.
"""

from devtools.services.kafka_broker import KafkaBroker
from devtools.services.kafka_cluster import KafkaCluster, NodeSpec, default_ports, plan_nodes
from devtools.services.kafka_config import (
    SCRAM_ADMIN_USER,
    SCRAM_MECHANISMS,
    min_insync_replicas,
    render_server_properties,
)
from devtools.services.kafka_dist import fetch_kafka, kafka_libs, kafka_version
from devtools.services.layout import Layout
from devtools.services.processes import ServiceError, port_open
from devtools.services.redis_server import RedisServer

__all__ = [
    "SCRAM_ADMIN_USER",
    "SCRAM_MECHANISMS",
    "KafkaBroker",
    "KafkaCluster",
    "Layout",
    "NodeSpec",
    "RedisServer",
    "ServiceError",
    "default_ports",
    "fetch_kafka",
    "kafka_libs",
    "kafka_version",
    "min_insync_replicas",
    "plan_nodes",
    "port_open",
    "render_server_properties",
]
