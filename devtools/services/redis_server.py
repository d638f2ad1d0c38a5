"""One Redis server on loopback (Debian's ``redis-server``): start, probe, stop, kill, wipe."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from devtools.paths import VAR_DIR
from devtools.services.processes import (
    ServiceError,
    log_tail,
    port_open,
    read_pid,
    send_signal,
    tail,
    wait_gone,
)


class RedisServer:
    """One ``redis-server`` on 127.0.0.1:``port``, its RDB snapshot and pid file in ``data_dir``.

    ``stop(save=True)`` snapshots before exiting, so ``start()`` finds the data again;
    ``stop(save=False)`` or ``wipe()`` make the next start an empty one.
    """

    def __init__(
        self,
        port: int = 6380,
        data_dir: Path | str = VAR_DIR / "redis",
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
        return read_pid(self.pid_file, f":{self.port}")

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
            raise ServiceError(f"redis-server failed to start:\n{tail(done.stdout + done.stderr)}")
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
            f"log tail:\n{log_tail(self.log_file)}"
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
        if not wait_gone(pid, timeout):
            send_signal(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would: whatever was not snapshotted is lost."""
        pid = self.pid()
        if pid is not None:
            send_signal(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
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
