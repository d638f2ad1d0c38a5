"""Timing helpers for the stage benchmarks: median time per call, on the benchmark core."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator

#: The core the process under test runs on; the harness, broker and Redis use the others.
BENCH_CPU = 1


@contextlib.contextmanager
def on_bench_core() -> Iterator[None]:
    """Run the block pinned to the core the worker would use (all cores when there is one)."""
    if not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {BENCH_CPU})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def time_per_call(fn: Callable[[], object], min_seconds: float, min_calls: int = 5) -> float:
    """Median CPU seconds per call over ~10 rounds that together last at least ``min_seconds``.

    CPU time of this process (``time.process_time``), not wall time: the code measured here is
    single-threaded and CPU-bound, so on an idle core the two agree, and on a shared machine
    CPU time does not count the time other processes held the core.
    """
    return _median_per_call(fn, min_seconds, min_calls, time.process_time)


def _median_per_call(
    fn: Callable[[], object], min_seconds: float, min_calls: int, clock: Callable[[], float]
) -> float:
    fn()  # warm-up
    t0 = clock()
    fn()
    one = max(clock() - t0, 1e-7)
    per_round = max(min_calls, int(min_seconds / 10 / one))
    rounds = []
    for _ in range(10):
        t0 = clock()
        for _ in range(per_round):
            fn()
        rounds.append((clock() - t0) / per_round)
    return statistics.median(rounds)


async def atime_per_call(
    fn: Callable[[], Awaitable[object]], min_seconds: float, min_calls: int = 5
) -> float:
    """Median WALL seconds per call of a coroutine (a round trip: the server's time counts)."""
    await fn()
    t0 = time.perf_counter()
    await fn()
    one = max(time.perf_counter() - t0, 1e-7)
    per_round = max(min_calls, int(min_seconds / 10 / one))
    rounds = []
    for _ in range(10):
        t0 = time.perf_counter()
        for _ in range(per_round):
            await fn()
        rounds.append((time.perf_counter() - t0) / per_round)
    return statistics.median(rounds)
