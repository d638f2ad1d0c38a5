"""One Apache Kafka node on loopback: configure, format, start, probe, stop and kill it.

The development stack runs one (broker and controller in one process); a cluster of several
(:class:`devtools.services.kafka_cluster.KafkaCluster`) runs one :class:`KafkaBroker` per node,
each with its ``node_id``, the shared ``quorum_voters``, ``cluster_id`` and
``replication_factor``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from devtools.paths import CACHE_DIR, KAFKA_INFRA, VAR_DIR
from devtools.services.kafka_config import (
    SCRAM_ADMIN_USER,
    SCRAM_MECHANISMS,
    new_cluster_id,
    render_server_properties,
)
from devtools.services.kafka_dist import Say, fetch_kafka, kafka_version, quiet
from devtools.services.processes import (
    ServiceError,
    log_tail,
    port_open,
    read_pid,
    send_signal,
    tail,
    wait_gone,
)

DEFAULT_KAFKA_HEAP: Final = "-Xms256m -Xmx1g"
KAFKA_JVM_OPTS: Final = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


class KafkaBroker:
    """One KRaft node on 127.0.0.1 (single-node by default), its data and config in ``data_dir``.

    ``data_dir`` holds ``data/`` (the log dirs, formatted once), ``server.properties`` and the
    pid file; the log goes to ``log_dir/kafka.log`` (default: ``data_dir``). With
    ``scram_users`` (user -> password, must include ``admin``) the client listener is
    SASL_PLAINTEXT with SCRAM-SHA-256/512 and those users are created at format time.
    ``node_id``, ``quorum_voters`` (node id -> controller port) and ``cluster_id`` (random when
    not given) place the node in a cluster; the defaults make it a cluster of its own.
    ``replication_factor`` is the cluster's default for new and internal topics.
    """

    def __init__(
        self,
        port: int = 9092,
        controller_port: int = 9093,
        data_dir: Path | str = VAR_DIR / "kafka",
        *,
        log_dir: Path | str | None = None,
        cache_dir: Path | str = CACHE_DIR,
        heap_opts: str | None = None,
        scram_users: Mapping[str, str] | None = None,
        extra_properties: Mapping[str, str] | None = None,
        node_id: int = 1,
        quorum_voters: Mapping[int, int] | None = None,
        cluster_id: str | None = None,
        replication_factor: int = 1,
    ) -> None:
        if scram_users and SCRAM_ADMIN_USER not in scram_users:
            raise ValueError(f"scram_users must include the inter-broker user {SCRAM_ADMIN_USER!r}")
        self.port = port
        self.controller_port = controller_port
        self.data_dir = Path(data_dir).absolute()
        self.log_file = Path(log_dir or data_dir).absolute() / "kafka.log"
        self.cache_dir = Path(cache_dir).absolute()
        self.heap_opts = heap_opts or os.environ.get("NP_KAFKA_HEAP_OPTS") or DEFAULT_KAFKA_HEAP
        self.scram_users = dict(scram_users or {})
        self.extra_properties = dict(extra_properties or {})
        self.node_id = node_id
        self.quorum_voters = dict(quorum_voters or {node_id: controller_port})
        self.cluster_id = cluster_id
        self.replication_factor = replication_factor
        self.version = kafka_version()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return read_pid(self.pid_file, str(self.properties_file))

    def is_running(self) -> bool:
        return self.pid() is not None

    def describe(self) -> str:
        return (
            f"Apache Kafka {self.version} (KRaft) broker {self.bootstrap}, "
            f"controller 127.0.0.1:{self.controller_port}"
        )

    def start(self, timeout: float = 90.0, *, say: Say = quiet) -> None:
        """Start the broker (formatting its storage on first use) and wait until it answers."""
        self.launch(say=say)
        self.wait_ready(timeout)

    def launch(self, *, say: Say = quiet) -> None:
        """Start the broker's process (formatting its storage on first use), without waiting.

        The nodes of a cluster are launched together: none answers before a quorum of
        controllers runs. A running broker is left alone.
        """
        if self.is_running():
            return
        if port_open(self.port) or port_open(self.controller_port):
            raise ServiceError(
                f"port {self.port} or {self.controller_port} is in use by another process"
            )
        libs = fetch_kafka(self.cache_dir, say=say)
        self._write_config()
        self._format_storage(libs)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n==== starting {self.describe()} at {time.ctime()}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(self.properties_file)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n", encoding="ascii")

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the broker answers a metadata request with an active controller."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ServiceError(f"the Kafka broker exited; log tail:\n{log_tail(self.log_file)}")
            if port_open(self.port):
                try:
                    if self.describe_cluster().get("controller_id", -1) >= 0:
                        return
                    last_error = "no active controller yet"
                except Exception as exc:  # kafka-python raises many types while starting
                    last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        raise ServiceError(
            f"the Kafka broker did not answer within {timeout:.0f}s ({last_error}); log tail:\n"
            f"{log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 45.0) -> None:
        """Controlled shutdown (SIGTERM), SIGKILL after ``timeout``. The data is kept."""
        pid = self.pid()
        if pid is None:
            return
        send_signal(pid, signal.SIGTERM)
        if not self._reap(pid, timeout):
            send_signal(pid, signal.SIGKILL)
            self._reap(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would. The data is kept."""
        pid = self.pid()
        if pid is not None:
            send_signal(pid, signal.SIGKILL)
            self._reap(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def _reap(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            self._proc = None
            return True
        return wait_gone(pid, timeout)

    def describe_cluster(self) -> dict[str, Any]:
        """The cluster as this broker sees it (kafka-python's ``describe_cluster``): the
        registered ``brokers`` (each with ``broker_id`` and ``is_fenced``) and the active
        ``controller_id`` (-1: none)."""
        from kafka import KafkaAdminClient  # noqa: PLC0415 - only the probe needs kafka-python

        kwargs: dict[str, Any] = {}
        if self.scram_users:
            kwargs = {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": SCRAM_MECHANISMS[0],
                "sasl_plain_username": SCRAM_ADMIN_USER,
                "sasl_plain_password": self.scram_users[SCRAM_ADMIN_USER],
            }
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="nowplaying-devservices",
            request_timeout_ms=5000,
            bootstrap_timeout_ms=3000,
            **kwargs,
        )
        try:
            return dict(admin.describe_cluster())
        finally:
            admin.close()

    def server_properties(self) -> str:
        """The ``server.properties`` this node runs with (written at each start)."""
        return render_server_properties(
            port=self.port,
            controller_port=self.controller_port,
            data_dir=self.data_dir / "data",
            version=self.version,
            node_id=self.node_id,
            quorum_voters=self.quorum_voters,
            replication_factor=self.replication_factor,
            scram_users=self.scram_users,
            extra_properties=self.extra_properties,
        )

    def _write_config(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.server_properties(), encoding="utf-8")

    def _format_storage(self, libs: Path) -> None:
        if (self.data_dir / "data" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        args = ["format", "-t", cluster_id, "-c", str(self.properties_file)]
        for user, password in self.scram_users.items():
            for mechanism in SCRAM_MECHANISMS:
                args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        done = subprocess.run(
            self._java(libs, "kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            check=False,
            cwd=self.data_dir,
        )
        if done.returncode != 0:
            raise ServiceError(
                f"formatting {self.data_dir} failed:\n{tail(done.stdout + done.stderr)}"
            )

    def _java(self, libs: Path, main_class: str, *args: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java:
            raise ServiceError("Java 17+ is needed to run the Kafka broker (java not on PATH)")
        return [
            java,
            *self.heap_opts.split(),
            *KAFKA_JVM_OPTS,
            f"-Dlog4j2.configurationFile={KAFKA_INFRA / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]
