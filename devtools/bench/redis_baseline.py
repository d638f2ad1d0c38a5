"""The Redis server's own limit: ``redis-benchmark`` SET rates, pipelined and not, same server."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class RedisBenchmark:
    set_pipelined_per_s: float  # -P <pipeline>
    set_single_per_s: float  # -P 1: one round trip per SET
    pipeline: int
    requests: int


def redis_host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


def parse_csv_rps(output: str, test: str = "SET") -> float:
    """The requests/s of ``test`` from ``redis-benchmark --csv`` output."""
    for row in csv.reader(io.StringIO(output)):
        if row and row[0].strip('"') == test:
            return float(row[1])
    raise ValueError(f"no {test} line in redis-benchmark output: {output[:200]!r}")


def run_redis_benchmark(
    url: str, requests: int = 200_000, pipeline: int = 100, cpu: int | None = None
) -> RedisBenchmark | None:
    """None when ``redis-benchmark`` is not installed (Debian's redis-tools ships it)."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return None
    host, port = redis_host_port(url)
    base = [exe, "-h", host, "-p", str(port), "--dbnum", "15", "-t", "set", "--csv", "-c", "1"]
    if cpu is not None and shutil.which("taskset"):
        base = ["taskset", "-c", str(cpu), *base]

    def rate(n: int, p: int) -> float:
        out = subprocess.run(
            [*base, "-n", str(n), "-P", str(p)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return parse_csv_rps(out.stdout)

    return RedisBenchmark(
        set_pipelined_per_s=rate(requests, pipeline),
        set_single_per_s=rate(max(requests // 10, 1000), 1),
        pipeline=pipeline,
        requests=requests,
    )
