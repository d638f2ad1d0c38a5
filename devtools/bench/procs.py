"""Processes under test: start one pinned to a core, read its CPU time and RSS from /proc.

A benchmarked process (the worker, the naive implementation, the passthrough) runs alone on one
core (``taskset -c``); the harness, the broker and Redis share the other. CPU time is the sum of
user and system time of all the process's threads (``/proc/<pid>/stat``), RSS comes from
``/proc/<pid>/status``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.paths import REPO_ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    at: float  # time.monotonic()
    cpu_s: float
    rss_mb: float


def parse_stat_cpu_seconds(stat_line: str) -> float:
    """utime + stime in seconds from one ``/proc/<pid>/stat`` line.

    The command name (field 2) may contain spaces and parentheses, so fields are counted after the
    last ``)``.
    """
    rest = stat_line[stat_line.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / CLOCK_TICKS


def parse_status_rss_mb(status_text: str) -> float:
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(pid: int) -> ProcSample | None:
    """CPU time and RSS of a live process, or None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError):
        return None
    return ProcSample(time.monotonic(), parse_stat_cpu_seconds(stat), parse_status_rss_mb(status))


class Sampler:
    """Samples a process every ``interval`` seconds on a background thread; with ``others``,
    each sample is the sum (CPU time, RSS) over ``pid`` and them."""

    def __init__(self, pid: int, interval: float = 0.5, *, others: Sequence[int] = ()) -> None:
        self.pid = pid
        self.others = tuple(others)
        self.interval = interval
        self.samples: list[ProcSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{pid}", daemon=True)

    def __enter__(self) -> Sampler:
        self.take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.take()

    def take(self) -> ProcSample | None:
        s = sample(self.pid)
        for pid in self.others:
            o = sample(pid)
            if s is None or o is None:
                return None
            s = ProcSample(s.at, s.cpu_s + o.cpu_s, s.rss_mb + o.rss_mb)
        if s is not None:
            self.samples.append(s)
        return s

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.take()


def nowplaying_exe() -> str:
    """The ``nowplaying`` command of this interpreter's environment."""
    found = Path(sys.executable).with_name("nowplaying")
    return str(found) if found.exists() else (shutil.which("nowplaying") or "nowplaying")


def repository_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``PYTHONPATH`` with the repository first, so that a child process can run the tooling
    (``python -m devtools.bench.naive``, never installed) from any working directory."""
    environ = os.environ if environ is None else environ
    rest = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *rest])}


def pinned_command(cmd: Sequence[str], cpu: int | None) -> list[str]:
    """``cmd`` prefixed with ``taskset -c <cpu>`` when a core is given and taskset exists."""
    if cpu is None or shutil.which("taskset") is None or cpu >= (os.cpu_count() or 1):
        return list(cmd)
    return ["taskset", "-c", str(cpu), *cmd]


@dataclass
class Child:
    """A process started by the harness, with its output sent to a log file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start(
    cmd: Sequence[str],
    *,
    cpu: int | None,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    proc = subprocess.Popen(
        pinned_command(cmd, cpu),
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    log.close()
    return Child(proc, log_path)
