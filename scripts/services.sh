#!/usr/bin/env bash
# Start, stop or inspect the local services: a real Apache Kafka broker (KRaft, from Maven
# Central, run with Java 17) and Debian's redis-server. The logic lives in ONE place,
# devtools/services/; this wrapper only finds the project's Python.
#
#   scripts/services.sh up|down|status|fetch [kafka|redis|all]
#   scripts/services.sh cluster up|down|status      (a 3-broker Kafka cluster)
#
# Environment: NP_KAFKA_PORT (9092), NP_KAFKA_CONTROLLER_PORT (9093), NP_REDIS_PORT (6380),
# NP_STATE_DIR (var), NP_CACHE_DIR (.cache), NP_KAFKA_HEAP_OPTS (-Xms256m -Xmx1g),
# NP_KAFKA_CLUSTER_PORT (19092: brokers 19092-19094, controllers 19192-19194),
# NP_KAFKA_CLUSTER_HEAP_OPTS (-Xms128m -Xmx512m -XX:TieredStopAtLevel=1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${NP_PYTHON:-$root/.venv/bin/python}"
if [[ ! -x "$python" ]]; then
    echo "error: $python not found; run 'make setup' first" >&2
    exit 1
fi
cd "$root"
exec "$python" -m devtools.services "$@"
