"""Processes of the local services: pid files, liveness, signals, ports, the up/down lock.

Shared by every service (the Kafka broker, the Redis server); nothing here knows either one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be fetched, started or stopped; the message says why."""


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text`` (for error messages)."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a service's log file, or a note that there is none."""
    try:
        return tail(path.read_text(encoding="utf-8", errors="replace"), lines)
    except OSError:
        return f"(no log at {path})"


def alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ("" once it has gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def read_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` when that process is alive and its command line has ``marker``.

    The marker tells a service's own process from an unrelated one that reused a stale pid.
    """
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and marker in cmdline(pid) else None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the process to exit; True when it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return not alive(pid)


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Signal the process; one that has gone already is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialise up/down of the same state folder (engineers and CI may call them at once)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".services.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
