"""The local development services: a real Apache Kafka broker and a real Redis server.

No containers: the broker is Apache Kafka from Maven Central (``infra/kafka/pom.xml`` pins it),
run by Java 17 in KRaft combined mode; Redis is Debian's ``redis-server``. This module is the
ONE place that knows how to fetch, configure, start, probe and stop them; ``make up`` /
``make down`` (through ``scripts/services.sh``) and the tests (``tests/support/services.py``)
both use it.

Command line::

    python -m nowplaying.devservices {up|down|status|fetch} [kafka|redis|all]

Environment (all optional):

``NP_KAFKA_PORT`` (9092), ``NP_KAFKA_CONTROLLER_PORT`` (9093), ``NP_REDIS_PORT`` (6380)
    The loopback ports of the default instances.
``NP_STATE_DIR`` (``var``)
    Runtime state: ``kafka/`` (broker data and config), ``redis/`` (RDB snapshot), ``log/``.
``NP_CACHE_DIR`` (``.cache``)
    The broker's jars, under ``kafka/<version>/libs``.
``NP_KAFKA_HEAP_OPTS`` (``-Xms256m -Xmx1g``)
    The broker's JVM heap.

Private instances for tests: ``KafkaBroker(port, controller_port, data_dir).start()`` and
``RedisServer(port, data_dir).start()``, then ``stop()`` (graceful, keeps the data),
``kill()`` (SIGKILL) and ``start()`` again with the same folder.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
KAFKA_INFRA: Final = REPO_ROOT / "infra" / "kafka"
DEFAULT_KAFKA_HEAP: Final = "-Xms256m -Xmx1g"
KAFKA_JVM_OPTS: Final = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
SCRAM_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_ADMIN_USER: Final = "admin"

Say = Callable[[str], None]


class ServiceError(RuntimeError):
    """A local service could not be fetched, started or stopped; the message says why."""


def _quiet(_: str) -> None:
    """A ``say`` that says nothing (the default of the library API)."""


# --- locations and configuration --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the default instances live, from the environment (see the module docstring)."""

    kafka_port: int
    kafka_controller_port: int
    redis_port: int
    state_dir: Path
    cache_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Layout:
        env = os.environ if env is None else env
        return cls(
            kafka_port=_port(env, "NP_KAFKA_PORT", 9092),
            kafka_controller_port=_port(env, "NP_KAFKA_CONTROLLER_PORT", 9093),
            redis_port=_port(env, "NP_REDIS_PORT", 6380),
            state_dir=Path(env.get("NP_STATE_DIR") or REPO_ROOT / "var").absolute(),
            cache_dir=Path(env.get("NP_CACHE_DIR") or REPO_ROOT / ".cache").absolute(),
        )

    def kafka(self) -> KafkaBroker:
        return KafkaBroker(
            self.kafka_port,
            self.kafka_controller_port,
            self.state_dir / "kafka",
            log_dir=self.state_dir / "log",
            cache_dir=self.cache_dir,
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


def kafka_version(pom: Path = KAFKA_INFRA / "pom.xml") -> str:
    """The pinned broker version: the ``kafka.version`` property of ``infra/kafka/pom.xml``."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text(encoding="utf-8"))
    if match is None:
        raise ServiceError(f"{pom} has no <kafka.version> property")
    return match.group(1).strip()


def kafka_libs(cache_dir: Path, version: str) -> Path:
    return cache_dir / "kafka" / version / "libs"


def fetch_kafka(cache_dir: Path, *, say: Say = _quiet) -> Path:
    """Download the broker's jars from Maven Central once; return the folder holding them."""
    version = kafka_version()
    libs = kafka_libs(cache_dir, version)
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is needed once to download the Kafka broker jars")
    say(
        f"Downloading Apache Kafka {version} and its dependencies from Maven Central into "
        f"{libs} (first run only; cached afterwards) ..."
    )
    staging = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(KAFKA_INFRA / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise ServiceError(
            f"mvn failed to fetch Kafka {version}:\n{_tail(done.stdout + done.stderr)}"
        )
    (staging / ".complete").write_text(version + "\n", encoding="utf-8")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    say(f"Cached {sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return libs


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    version: str,
    scram_users: Mapping[str, str] | None = None,
    extra_properties: Mapping[str, str] | None = None,
) -> str:
    """The broker's ``server.properties`` from ``infra/kafka/server.properties.template``."""
    template = Template((KAFKA_INFRA / "server.properties.template").read_text(encoding="utf-8"))
    text = template.substitute(
        kafka_version=version,
        port=port,
        controller_port=controller_port,
        listener_name="SASL_PLAINTEXT" if scram_users else "PLAINTEXT",
        data_dir=data_dir,
    )
    extra: dict[str, str] = {}
    if scram_users:
        extra.update(_scram_properties(scram_users))
    extra.update(extra_properties or {})
    if extra:
        text += "\n# Instance-specific settings\n"
        text += "".join(f"{key}={value}\n" for key, value in extra.items())
    return text


def _scram_properties(users: Mapping[str, str]) -> dict[str, str]:
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


def _kafka_cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 bytes, no padding).

    Like Kafka's own ``Uuid.randomUuid``, never one starting with '-' (read as an option).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


# --- processes --------------------------------------------------------------------------------


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return _tail(path.read_text(encoding="utf-8", errors="replace"), lines)
    except OSError:
        return f"(no log at {path})"


def _alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _read_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` when that process is alive and its command line has ``marker``."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) and marker in _cmdline(pid) else None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialise up/down of the same state folder (engineers and CI may call them at once)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".services.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- Kafka ------------------------------------------------------------------------------------


class KafkaBroker:
    """One single-node KRaft broker on 127.0.0.1, its data and config under ``data_dir``.

    ``data_dir`` holds ``data/`` (the log dirs, formatted once), ``server.properties`` and the
    pid file; the log goes to ``log_dir/kafka.log`` (default: ``data_dir``). With
    ``scram_users`` (user -> password, must include ``admin``) the client listener is
    SASL_PLAINTEXT with SCRAM-SHA-256/512 and those users are created at format time.
    """

    def __init__(
        self,
        port: int = 9092,
        controller_port: int = 9093,
        data_dir: Path | str = REPO_ROOT / "var" / "kafka",
        *,
        log_dir: Path | str | None = None,
        cache_dir: Path | str = REPO_ROOT / ".cache",
        heap_opts: str | None = None,
        scram_users: Mapping[str, str] | None = None,
        extra_properties: Mapping[str, str] | None = None,
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
        return _read_pid(self.pid_file, str(self.properties_file))

    def is_running(self) -> bool:
        return self.pid() is not None

    def describe(self) -> str:
        return (
            f"Apache Kafka {self.version} (KRaft) broker {self.bootstrap}, "
            f"controller 127.0.0.1:{self.controller_port}"
        )

    def start(self, timeout: float = 90.0, *, say: Say = _quiet) -> None:
        """Start the broker (formatting its storage on first use) and wait until it answers."""
        if self.is_running():
            self.wait_ready(timeout)
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
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the broker answers a metadata request with an active controller."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ServiceError(
                    f"the Kafka broker exited; log tail:\n{_log_tail(self.log_file)}"
                )
            if port_open(self.port):
                try:
                    if self._controller_id() >= 0:
                        return
                    last_error = "no active controller yet"
                except Exception as exc:  # kafka-python raises many types while starting
                    last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        raise ServiceError(
            f"the Kafka broker did not answer within {timeout:.0f}s ({last_error}); log tail:\n"
            f"{_log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 45.0) -> None:
        """Controlled shutdown (SIGTERM), SIGKILL after ``timeout``. The data is kept."""
        pid = self.pid()
        if pid is None:
            return
        _signal(pid, signal.SIGTERM)
        if not self._reap(pid, timeout):
            _signal(pid, signal.SIGKILL)
            self._reap(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would. The data is kept."""
        pid = self.pid()
        if pid is not None:
            _signal(pid, signal.SIGKILL)
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
        return _wait_gone(pid, timeout)

    def _controller_id(self) -> int:
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
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        return int(cluster.get("controller_id", -1))

    def _write_config(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        text = render_server_properties(
            port=self.port,
            controller_port=self.controller_port,
            data_dir=self.data_dir / "data",
            version=self.version,
            scram_users=self.scram_users,
            extra_properties=self.extra_properties,
        )
        self.properties_file.write_text(text, encoding="utf-8")

    def _format_storage(self, libs: Path) -> None:
        if (self.data_dir / "data" / "meta.properties").exists():
            return
        args = ["format", "-t", _kafka_cluster_id(), "-c", str(self.properties_file)]
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
                f"formatting {self.data_dir} failed:\n{_tail(done.stdout + done.stderr)}"
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


# --- Redis ------------------------------------------------------------------------------------


class RedisServer:
    """One ``redis-server`` on 127.0.0.1:``port``, its RDB snapshot and pid file in ``data_dir``.

    ``stop(save=True)`` snapshots before exiting, so ``start()`` finds the data again;
    ``stop(save=False)`` or ``wipe()`` make the next start an empty one.
    """

    def __init__(
        self,
        port: int = 6380,
        data_dir: Path | str = REPO_ROOT / "var" / "redis",
        *,
        log_dir: Path | str | None = None,
    ) -> None:
        self.port = port
        self.data_dir = Path(data_dir).absolute()
        self.log_file = Path(log_dir or data_dir).absolute() / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def pid(self) -> int | None:
        return _read_pid(self.pid_file, f":{self.port}")

    def is_running(self) -> bool:
        return self.pid() is not None

    def describe(self) -> str:
        return f"Redis {self.server_version() or '?'} on 127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        if self.is_running():
            self.wait_ready(timeout)
            return
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is in use by another process")
        server = shutil.which("redis-server")
        if server is None:
            raise ServiceError(
                "redis-server is missing: apt-get install -y redis-server (make setup does it)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "protected-mode": "yes",
            "dir": str(self.data_dir),
            "dbfilename": "dump.rdb",
            "daemonize": "yes",
            "pidfile": str(self.pid_file),
            "logfile": str(self.log_file),
            "appendonly": "no",
            "save": "3600 1 300 100 60 10000",
        }
        argv = [server, *(arg for key, value in options.items() for arg in (f"--{key}", value))]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServiceError(f"redis-server failed to start:\n{_tail(done.stdout + done.stderr)}")
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            try:
                if self._client().ping():
                    return
            except Exception as exc:  # redis-py raises BusyLoadingError etc. while loading
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise ServiceError(
            f"Redis on port {self.port} did not answer PING within {timeout:.0f}s ({last_error}); "
            f"log tail:\n{_log_tail(self.log_file)}"
        )

    def server_version(self) -> str | None:
        try:
            return str(self._client().info("server")["redis_version"])
        except Exception:
            return None

    def stop(self, *, save: bool = True, timeout: float = 20.0) -> None:
        """SHUTDOWN SAVE (or NOSAVE) and wait for the process to exit."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(Exception):  # the connection drops as the server exits
            self._client().shutdown(save=save, nosave=not save)
        if not _wait_gone(pid, timeout):
            _signal(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would: whatever was not snapshotted is lost."""
        pid = self.pid()
        if pid is not None:
            _signal(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)

    def wipe(self) -> None:
        """Delete the snapshot so that the next start is empty (only while stopped)."""
        if self.is_running():
            raise ServiceError("stop Redis before wiping its data")
        (self.data_dir / "dump.rdb").unlink(missing_ok=True)

    def _client(self) -> Any:
        import redis  # noqa: PLC0415 - keeps `--help` and the Kafka path free of redis-py
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        # No retries: a probe answers now or not, and SHUTDOWN drops the connection on purpose.
        return redis.Redis(
            port=self.port, host="127.0.0.1", socket_timeout=2.0, retry=Retry(NoBackoff(), 0)
        )


# --- command line -----------------------------------------------------------------------------


def _up(layout: Layout, which: Sequence[str]) -> None:
    with _locked(layout.state_dir):
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


def _down(layout: Layout, which: Sequence[str]) -> None:
    with _locked(layout.state_dir):
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


def _status(layout: Layout, which: Sequence[str]) -> int:
    services: list[KafkaBroker | RedisServer] = []
    if "kafka" in which:
        services.append(layout.kafka())
    if "redis" in which:
        services.append(layout.redis())
    down = 0
    for service in services:
        if service.is_running():
            print(f"{service.describe()}: running (pid {service.pid()})")
        else:
            down += 1
            print(f"{type(service).__name__} on port {service.port}: stopped")
    return 0 if down == 0 else 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nowplaying.devservices",
        description="Start, stop or inspect the local Kafka broker and Redis server.",
    )
    parser.add_argument("action", choices=["up", "down", "status", "fetch"])
    parser.add_argument("service", nargs="?", default="all", choices=["all", "kafka", "redis"])
    args = parser.parse_args(argv)
    which = ["kafka", "redis"] if args.service == "all" else [args.service]
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # the probe's retries are expected
    try:
        layout = Layout.from_env()
        if args.action == "fetch":
            print(f"Kafka jars: {fetch_kafka(layout.cache_dir, say=print)}")
        elif args.action == "up":
            _up(layout, which)
        elif args.action == "down":
            _down(layout, which)
        else:
            return _status(layout, which)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
