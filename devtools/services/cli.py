"""``python -m devtools.services {up|down|status|fetch} [kafka|redis|all]`` and
``python -m devtools.services cluster {up|down|status}``.

``up`` starts what is not running (Redis first) and waits until it answers; ``down`` stops
what runs (Kafka first; the data stays); ``status`` exits 3 when any asked-for service is
stopped; ``fetch`` downloads the broker's jars. ``cluster`` does the same for the local 3-node
Kafka cluster, next to (not instead of) the single broker. Ports and folders:
:mod:`devtools.services.layout`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from devtools.services.kafka_broker import KafkaBroker
from devtools.services.kafka_cluster import KafkaCluster
from devtools.services.kafka_dist import fetch_kafka
from devtools.services.layout import Layout
from devtools.services.processes import ServiceError, locked
from devtools.services.redis_server import RedisServer


def up(layout: Layout, which: Sequence[str]) -> None:
    with locked(layout.state_dir):
        if "redis" in which:
            _start_one(layout.redis(), lambda server: server.start())
        if "kafka" in which:
            _start_one(layout.kafka(), lambda broker: broker.start(say=print))


def _start_one(service: Any, start: Callable[[Any], None]) -> None:
    was_running = service.is_running()
    began = time.monotonic()
    start(service)
    if was_running:
        print(f"{service.describe()}: already running (pid {service.pid()})")
    else:
        took = time.monotonic() - began
        print(f"{service.describe()}: started (pid {service.pid()}) in {took:.1f}s")


def down(layout: Layout, which: Sequence[str]) -> None:
    with locked(layout.state_dir):
        if "kafka" in which:
            _stop_one(layout.kafka())
        if "redis" in which:
            _stop_one(layout.redis())


def _stop_one(service: KafkaBroker | RedisServer) -> None:
    name = type(service).__name__
    if not service.is_running():
        print(f"{name} on port {service.port}: not running")
        return
    service.stop()
    print(f"{name} on port {service.port}: stopped")


def status(layout: Layout, which: Sequence[str]) -> int:
    services: list[KafkaBroker | RedisServer] = []
    if "kafka" in which:
        services.append(layout.kafka())
    if "redis" in which:
        services.append(layout.redis())
    stopped = 0
    for service in services:
        if service.is_running():
            print(f"{service.describe()}: running (pid {service.pid()})")
        else:
            stopped += 1
            print(f"{type(service).__name__} on port {service.port}: stopped")
    return 0 if stopped == 0 else 3


def cluster(layout: Layout, action: str) -> int:
    """``cluster up|down|status``: the local 3-node Kafka cluster."""
    with locked(layout.state_dir):
        nodes = layout.kafka_cluster()
        if action == "up":
            was_running = nodes.is_running()
            began = time.monotonic()
            nodes.start(say=print)
            took = (
                "already running" if was_running else f"started in {time.monotonic() - began:.1f}s"
            )
            print(f"{nodes.describe()}: {took}")
            print(_cluster_hint(nodes))
        elif action == "down":
            running = nodes.running()
            nodes.stop()
            print(f"Kafka cluster: stopped {len(running)} of {nodes.size} nodes")
        else:
            for node in nodes.nodes:
                state = f"running (pid {node.pid()})" if node.is_running() else "stopped"
                print(f"node {node.node_id}: {node.describe()}: {state}")
            return 0 if nodes.is_running() else 3
    return 0


def _cluster_hint(nodes: KafkaCluster) -> str:
    return (
        f"Point nowplaying at it: NP_KAFKA_BOOTSTRAP_SERVERS={nodes.bootstrap} "
        f"NP_TOPIC_REPLICATION_FACTOR={nodes.replication_factor}"
    )


SERVICES = ("all", "kafka", "redis")
CLUSTER_ACTIONS = ("up", "down", "status")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.services",
        description="Start, stop or inspect the local Kafka broker and Redis server "
        "(or, with `cluster`, the local 3-node Kafka cluster).",
    )
    parser.add_argument("action", choices=["up", "down", "status", "fetch", "cluster"])
    parser.add_argument(
        "target",
        nargs="?",
        metavar="{all,kafka,redis} | {up,down,status}",
        help="the service (default all); after `cluster`, what to do with the cluster",
    )
    args = parser.parse_args(argv)
    if args.action == "cluster" and args.target not in CLUSTER_ACTIONS:
        parser.error(f"cluster needs one of {', '.join(CLUSTER_ACTIONS)}")
    if args.action != "cluster" and (args.target or "all") not in SERVICES:
        parser.error(f"the service is one of {', '.join(SERVICES)}, not {args.target!r}")
    service = args.target or "all"
    which = ["kafka", "redis"] if service == "all" else [service]
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # the probe's retries are expected
    try:
        layout = Layout.from_env()
        if args.action == "cluster":
            return cluster(layout, args.target)
        if args.action == "fetch":
            print(f"Kafka jars: {fetch_kafka(layout.cache_dir, say=print)}")
        elif args.action == "up":
            up(layout, which)
        elif args.action == "down":
            down(layout, which)
        else:
            return status(layout, which)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
