"""End to end: replay real sessions through the real broker and Redis into one process pinned to
one core, at fixed offered rates and as fast as possible, and measure what comes out.

The same driver measures every implementation: the stream worker (``nowplaying worker``), the
naive hand-written loop (``devtools.bench.naive``) and the raw aiokafka passthrough
(``devtools.bench.passthrough``). Each gets its own topics, consumer group, Redis key prefix and
ports (:mod:`devtools.bench.isolation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from devtools.bench import procs
from devtools.bench.isolation import (
    create_topics,
    delete_redis_keys,
    delete_topics,
    free_port,
    run_settings,
    settings_env,
)
from devtools.bench.kafka_io import AnswerReader, Produced, produce_at_rate, producer_for
from devtools.bench.latency import Answer, latencies_ms, latency_stats, sustained_rate
from devtools.bench.report import E2EResult
from devtools.bench.timing import BENCH_CPU
from devtools.bench.worker_metrics import (
    BATCH_COUNT,
    BATCH_SUM,
    INFERENCE_SUM,
    WORKER_METRICS,
    metric_deltas,
    scrape_metrics,
)
from devtools.bench.workload import Prepared, build_workload
from models.labelled_sessions import Session
from nowplaying.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Impl:
    """An implementation under test: how to start it and what it answers."""

    name: str
    command: tuple[str, ...]
    answers_starts_only: bool  # True: one answer per track start; False: one per event
    has_metrics: bool = False  # serves the worker's /metrics on worker_metrics_port
    #: Processes in one consumer group, each pinned to a core of its own (the first to the
    #: benchmark core); CPU and RSS are their sums.
    processes: int = 1


WORKER = Impl(
    "worker", (procs.nowplaying_exe(), "worker"), answers_starts_only=True, has_metrics=True
)
NAIVE = Impl("naive", (sys.executable, "-m", "devtools.bench.naive"), answers_starts_only=True)
#: Two workers on two cores (the scaling figure): the harness shares the second core.
WORKER_PAIR = Impl(
    "2 workers", (procs.nowplaying_exe(), "worker"), answers_starts_only=True, processes=2
)
PASSTHROUGH = Impl(
    "passthrough", (sys.executable, "-m", "devtools.bench.passthrough"), answers_starts_only=False
)


@dataclass(frozen=True)
class Step:
    rate: float | None  # None: as fast as possible
    events: int


@dataclass(frozen=True)
class RunConfig:
    steps: tuple[Step, ...]
    warmup_events: int = 2000
    warmup_rate: float = 500.0
    startup_timeout_s: float = 120.0
    drain_timeout_s: float = 120.0
    settle_timeout_s: float = 300.0
    always_rates: tuple[float, ...] = ()  # run even after falling behind at a lower rate
    concurrent_sessions: int = 200
    sample_interval_s: float = 0.5


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class _Running:
    """An implementation running on its own topics, with the harness's producer and reader."""

    s: Settings
    impl: Impl
    child: procs.Child
    producer: AIOKafkaProducer
    reader: AnswerReader
    config: RunConfig
    others: tuple[procs.Child, ...] = ()  # the group's other processes

    def alive(self) -> bool:
        return self.child.alive() and all(c.alive() for c in self.others)


def step_result(
    *,
    impl: Impl,
    step: Step,
    produced: Produced,
    answers: Sequence[Answer],
    samples: Sequence[procs.ProcSample],
    worker_metrics: dict[str, float],
) -> E2EResult:
    inference_s = worker_metrics.get(INFERENCE_SUM)
    batches = worker_metrics.get(BATCH_COUNT)
    mine = [a for a in answers if a.event_id in produced.sent_ms]
    lat = latency_stats(latencies_ms(produced.sent_ms, mine))
    per_answer = produced.count / produced.starts if impl.answers_starts_only else 1.0
    expected = produced.starts if impl.answers_starts_only else produced.count
    answered_events = round(lat.matched * per_answer)
    cpu_s = samples[-1].cpu_s - samples[0].cpu_s if len(samples) >= 2 else None
    end_ms = max((a.published_ms for a in mine), default=produced.last_ms)
    wall_s = max((end_ms - produced.first_ms) / 1000.0, 1e-3)
    note = "" if lat.matched >= expected else f"{expected - lat.matched} answers missing"
    return E2EResult(
        impl=impl.name,
        offered_rate=step.rate,
        produced=produced.count,
        answered=answered_events,
        duration_s=round(wall_s, 3),
        sustained_eps=sustained_rate(mine, per_answer),
        p50_ms=lat.p50_ms,
        p95_ms=lat.p95_ms,
        p99_ms=lat.p99_ms,
        cpu_ms_per_event=None if cpu_s is None else 1000.0 * cpu_s / max(produced.count, 1),
        cpu_util=None if cpu_s is None else cpu_s / wall_s,
        rss_mb_start=samples[0].rss_mb if samples else None,
        rss_mb_end=samples[-1].rss_mb if samples else None,
        inference_share=(
            None if inference_s is None or not cpu_s else min(inference_s / cpu_s, 1.0)
        ),
        note=note,
        rss_mb_max=max((x.rss_mb for x in samples), default=None),
        mean_batch=worker_metrics[BATCH_SUM] / batches if batches else None,
        rss_mb_per_minute=rss_per_minute(samples),
    )


def rss_per_minute(samples: Sequence[procs.ProcSample]) -> tuple[float, ...]:
    """RSS at each whole minute since the first sample (empty for runs shorter than 2 min)."""
    if not samples or samples[-1].at - samples[0].at < 120:
        return ()
    start = samples[0].at
    out: list[float] = []
    for s in samples:
        if s.at - start >= 60 * len(out):
            out.append(round(s.rss_mb, 1))
    return tuple(out)


def _wanted(impl: Impl, events: Sequence[Prepared]) -> set[str]:
    return {e.event_id for e in events if e.is_start or not impl.answers_starts_only}


async def run_impl(
    *,
    settings: Settings,
    impl: Impl,
    sessions: Sequence[Session],
    config: RunConfig,
    log_dir: Path,
    on_step: Callable[[E2EResult], None] | None = None,
    on_running: Callable[[int, Step], None] | None = None,
) -> list[E2EResult]:
    """Start ``impl`` pinned to one core on fresh topics, warm it up, then run each step."""
    s = run_settings(settings, impl.name.replace(" ", "-"))
    await create_topics(s)
    children = [
        procs.start(
            impl.command,
            cpu=core,
            env={**settings_env(own), **procs.repository_env()},
            log_path=log_dir / f"{impl.name.replace(' ', '-')}{'' if k == 0 else k}.log",
        )
        for k, (core, own) in enumerate(_group(s, impl.processes))
    ]
    child = children[0]
    results: list[E2EResult] = []
    producer = producer_for(s, linger_ms=0)
    reader = AnswerReader(s, s.topic_recommendations)
    try:
        await producer.start()
        await reader.start()
        running = _Running(s, impl, child, producer, reader, config, tuple(children[1:]))
        alive = running.alive
        await _warm_up(running, sessions)
        offset = config.warmup_events
        saturated_at: float | None = None
        for k, step in enumerate(config.steps):
            if (
                step.rate is not None
                and saturated_at is not None
                and step.rate > saturated_at
                and step.rate not in config.always_rates
            ):
                log.warning("%s: skipping %g/s (it fell behind at %g/s)", impl.name, step.rate,
                            saturated_at)  # fmt: skip
                continue
            events = build_workload(
                sessions,
                step.events,
                tag=f"x{k}",
                concurrent=config.concurrent_sessions,
                offset=offset,
            )
            offset += len(events) // 30 + 1
            if on_running is not None:
                on_running(child.pid, step)
            result = await _run_step(running, step, events)
            results.append(result)
            if on_step is not None:
                on_step(result)
            if not alive():
                raise BenchError(f"{impl.name} exited:\n{child.log_tail()}")
            if not result.kept_up and step.rate is not None:
                saturated_at = step.rate
            # Let a backlog drain before the next step, so it does not count twice.
            await reader.collect_until(
                _wanted(impl, events), timeout_s=config.settle_timeout_s, alive=alive
            )
    finally:
        await reader.stop()
        await producer.stop()
        for one in children:
            one.stop()
        await delete_topics(s)
        await asyncio.to_thread(delete_redis_keys, s)
    return results


def _group(s: Settings, processes: int) -> list[tuple[int, Settings]]:
    """Each process's core and settings: the benchmark core first, then the others; ports of
    their own (the first keeps the run's)."""
    cpus = os.cpu_count() or 1
    cores = [BENCH_CPU, *(c for c in range(cpus) if c != BENCH_CPU)]
    out = [(cores[0] if cores[0] < cpus else 0, s)]
    for k in range(1, processes):
        ports = {"worker_metrics_port": free_port(), "worker_web_port": free_port()}
        out.append((cores[k % len(cores)], s.model_copy(update=ports)))
    return out


async def _warm_up(run: _Running, sessions: Sequence[Session]) -> None:
    config, reader, child = run.config, run.reader, run.child
    warm = build_workload(sessions, config.warmup_events, tag="w", concurrent=50)
    await produce_at_rate(run.producer, run.s.topic_play_events, warm, config.warmup_rate)
    wanted = _wanted(run.impl, warm)
    await reader.collect_until(
        wanted,
        timeout_s=config.startup_timeout_s,
        idle_s=config.startup_timeout_s,
        alive=run.alive,
    )
    got = {a.event_id for a in reader.answers} & wanted
    if len(got) < 0.99 * len(wanted):
        raise BenchError(
            f"{run.impl.name}: {len(got)} of {len(wanted)} warm-up answers "
            f"(alive={run.alive()}):\n{child.log_tail()}"
        )


async def _run_step(run: _Running, step: Step, events: list[Prepared]) -> E2EResult:
    impl, reader, child = run.impl, run.reader, run.child
    port = run.s.worker_metrics_port
    before = scrape_metrics(port, WORKER_METRICS) if impl.has_metrics else {}
    others = [c.pid for c in run.others]
    with procs.Sampler(child.pid, run.config.sample_interval_s, others=others) as sampler:
        collecting = asyncio.create_task(
            reader.collect_until(_wanted(impl, events), timeout_s=1e9, idle_s=1e9, alive=run.alive)
        )
        produced = await produce_at_rate(run.producer, run.s.topic_play_events, events, step.rate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(collecting, timeout=run.config.drain_timeout_s)
    after = scrape_metrics(port, WORKER_METRICS) if impl.has_metrics else {}
    return step_result(
        impl=impl,
        step=step,
        produced=produced,
        answers=reader.answers,
        samples=sampler.samples,
        worker_metrics=metric_deltas(before, after),
    )
