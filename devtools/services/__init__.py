"""The local development services: a real Apache Kafka broker and a real Redis server.

No containers: the broker is Apache Kafka from Maven Central (``infra/kafka/pom.xml`` pins it),
run by Java 17 in KRaft combined mode; Redis is Debian's ``redis-server``. This package is the
ONE place that knows how to fetch, configure, start, probe and stop them; ``make up`` /
``make down`` (through ``scripts/services.sh``) and the tests (``tests/support/services.py``)
both use it. Modules, one concern each:

``processes``     pid files, liveness, signals, ports, the up/down lock
``kafka_dist``    the pinned broker version and its jars (fetched once with Maven)
``kafka_config``  a node's ``server.properties`` (single node now; node id and voters ready
                  for a cluster), SASL/SCRAM, cluster ids
``kafka_broker``  :class:`KafkaBroker`: one node's process
``redis_server``  :class:`RedisServer`
``layout``        the default instances' ports and folders, from the environment
``cli``           ``python -m devtools.services {up|down|status|fetch} [kafka|redis|all]``

Environment (all optional): ``NP_KAFKA_PORT`` (9092), ``NP_KAFKA_CONTROLLER_PORT`` (9093),
``NP_REDIS_PORT`` (6380), ``NP_STATE_DIR`` (``var``), ``NP_CACHE_DIR`` (``.cache``),
``NP_KAFKA_HEAP_OPTS`` (``-Xms256m -Xmx1g``).

Private instances for tests: ``KafkaBroker(port, controller_port, data_dir).start()`` and
``RedisServer(port, data_dir).start()``, then ``stop()`` (graceful, keeps the data),
``kill()`` (SIGKILL) and ``start()`` again with the same folder.
"""

from devtools.services.kafka_broker import KafkaBroker
from devtools.services.kafka_config import (
    SCRAM_ADMIN_USER,
    SCRAM_MECHANISMS,
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
    "Layout",
    "RedisServer",
    "ServiceError",
    "fetch_kafka",
    "kafka_libs",
    "kafka_version",
    "port_open",
    "render_server_properties",
]
