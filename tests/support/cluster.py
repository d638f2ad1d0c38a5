"""A private, real Redis Cluster on loopback: N masters of Debian's ``redis-server`` in cluster
mode, joined with ``redis-cli --cluster create ... --cluster-replicas 0``.

Used by the scale-out test: the worker and the API get its URL with ``redis_cluster=True``.
Every node lives in its own folder under ``base_dir`` and is a child of the test process, so
:meth:`RedisClusterProcesses.stop` (or the fixture's teardown) ends exactly these processes.
"""

from __future__ import annotations

import functools
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

CLUSTER_BUS_OFFSET: Final = 10000  # Redis Cluster's node-to-node port is port + 10000


class ClusterError(RuntimeError):
    """The cluster could not be started; the message carries the nodes' log tails."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int, low: int = 21000, high: int = 29000) -> list[int]:
    """``count`` consecutive-free ports whose cluster-bus ports (``+10000``) are free too."""
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(low, high - count)
        ports = list(range(start, start + count))
        if all(_port_free(p) and _port_free(p + CLUSTER_BUS_OFFSET) for p in ports):
            return ports
    raise ClusterError(f"no {count} free ports (and bus ports) between {low} and {high}")


class RedisClusterProcesses:
    """``len(ports)`` cluster-enabled Redis masters, all slots assigned, on 127.0.0.1."""

    def __init__(
        self,
        base_dir: Path,
        ports: Sequence[int],
        *,
        password: str | None = None,
        node_timeout_ms: int = 3000,
    ) -> None:
        self.base_dir = base_dir
        self.ports = list(ports)
        self.password = password
        self.node_timeout_ms = node_timeout_ms
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """A URL of one node; cluster clients discover the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    def start(self, timeout: float = 30.0) -> None:
        server = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if server is None or cli is None:
            raise ClusterError(
                "redis-server and redis-cli are needed (apt-get install redis-server)"
            )
        for port in self.ports:
            self._start_node(server, port)
        for port in self.ports:
            self._wait(functools.partial(self._answers_ping, port), timeout, f"PING {port}")
        create = [
            cli,
            *self._auth_args(),
            "--cluster",
            "create",
            *self.nodes,
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ClusterError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        for port in self.ports:
            self._wait(functools.partial(self._cluster_ok, port), timeout, f"cluster ok on {port}")

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._procs.clear()

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for port in self.ports:
            log = self.base_dir / str(port) / "redis.log"
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            out.append(f"--- node {port}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    def slots_by_node(self) -> dict[int, int]:
        """How many hash slots each node serves (all 16384 are assigned once started)."""
        counts: dict[int, int] = {}
        for port in self.ports:
            info = self._cli(port, "CLUSTER", "NODES")
            mine = [row for row in info.splitlines() if "myself" in row]
            counts[port] = sum(_slot_count(r) for r in mine[0].split()[8:]) if mine else 0
        return counts

    def _start_node(self, server: str, port: int) -> None:
        node_dir = self.base_dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [
            server,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(node_dir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--appendonly", "no",
            "--save", "",
            "--logfile", str(node_dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        self._procs[port] = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _auth_args(self) -> list[str]:
        return ["--no-auth-warning", "-a", self.password] if self.password is not None else []

    def _cli(self, port: int, *command: str) -> str:
        cli = shutil.which("redis-cli") or "redis-cli"
        done = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(port), *self._auth_args(), *command],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.strip()

    def _answers_ping(self, port: int) -> bool:
        return self._cli(port, "PING") == "PONG"

    def _cluster_ok(self, port: int) -> bool:
        return "cluster_state:ok" in self._cli(port, "CLUSTER", "INFO")

    def _wait(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p, proc in self._procs.items() if proc.poll() is not None]
            if dead:
                raise ClusterError(f"node(s) {dead} exited\n{self.log_tails()}")
            if probe():
                return
            time.sleep(0.1)
        raise ClusterError(f"timed out waiting for {what}\n{self.log_tails()}")


def _slot_count(spec: str) -> int:
    """Slots in one ``CLUSTER NODES`` slot field: ``5461`` or ``0-5460`` (``[...]`` = migrating)."""
    if spec.startswith("["):
        return 0
    low, _, high = spec.partition("-")
    return int(high or low) - int(low) + 1
