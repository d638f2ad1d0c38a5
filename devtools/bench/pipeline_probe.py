"""The worker's pipeline in process: CPU time per event at a fixed batch size, no Kafka.

``python -m devtools.bench.pipeline_probe --model-dir DIR [--batch 1] [--events 2000]`` runs
the worker's :class:`streams.pipeline.Pipeline` as :func:`streams.runtime.start_runtime` builds
it (real Redis feature store and session cache, the loaded models behind the steering wrapper,
attribution, Prometheus and counting sensors) over the bench workload, in batches of exactly
``--batch`` events, with a publisher whose acknowledgements are already complete. It prints the
process CPU time per event (``time.process_time``, not wall time: the machine is shared), and
with ``--profile FILE`` writes cProfile statistics of the measured part.

It isolates the per-batch and per-event cost of everything the worker does outside Faust and
aiokafka; the end-to-end suites measure those too.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import time
import uuid
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

from devtools.bench.workload import bench_sessions, build_workload
from features.session_cache import SessionCache
from features.store import feature_store_for
from models.recommender import Recommender
from models.steered import SteeredRecommender
from nowplaying.clients import async_redis_client
from nowplaying.settings import Settings
from streams.attribution import attribution_for
from streams.instrumentation import CountingSensor, PrometheusSensor, Sensors
from streams.loading import load_models
from streams.pipeline import Pipeline, RawMessage
from streams.reload import ModelWatcher
from streams.steering import steered


class _GcTimer:
    """CPU time spent in the cyclic garbage collector while it is installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self.by_generation = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections += 1
            self.by_generation[info["generation"]] += 1

    def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)


class DonePublisher:
    """Keeps nothing; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        self.sent += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def probe(
    settings: Settings, batch: int, n_events: int, warmup: int, profile: Path | None
) -> float:
    """CPU milliseconds per event of ``Pipeline.start_batch`` (and its acknowledgements)."""
    models = load_models(settings)
    redis = async_redis_client(settings)
    store = feature_store_for(settings, redis, SessionCache(settings.session_cache_sessions))
    sensor = Sensors(PrometheusSensor(), CountingSensor())

    def wrap(recommender: Recommender) -> SteeredRecommender:
        return steered(recommender, None)

    pipeline = Pipeline(
        settings,
        store,
        models.recommender,
        DonePublisher(),
        sensor=sensor,
        models=ModelWatcher(settings, models, wrap=wrap),
        attribution=attribution_for(settings, sensor),
    )
    sessions, _ = bench_sessions(settings, 400)
    tag = uuid.uuid4().hex[:8]
    prepared = build_workload(sessions, warmup + n_events, tag)
    now_ms = time.time_ns() // 1_000_000
    messages = [
        RawMessage(p.value, p.key, settings.topic_play_events, 0, i, now_ms)
        for i, p in enumerate(prepared)
    ]

    async def run(part: Sequence[RawMessage]) -> None:
        for i in range(0, len(part), batch):
            await pipeline.process_batch(part[i : i + batch])

    await run(messages[:warmup])
    measured = messages[warmup:]
    profiler = cProfile.Profile(time.process_time) if profile is not None else None
    gc_time = _GcTimer()
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    await run(measured)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile))
    cpu = time.process_time() - started
    gc_time.stop()
    print(
        f"gc: {gc_time.collections} collections, {1000.0 * gc_time.seconds / len(measured):.3f} "
        f"ms CPU per event (by generation {gc_time.by_generation})"
    )
    await redis.aclose()
    return 1000.0 * cpu / len(measured)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--profile", type=Path, default=None)
    args = p.parse_args()
    settings = Settings(model_dir=args.model_dir, redis_key_prefix=f"probe{uuid.uuid4().hex[:6]}")
    ms = asyncio.run(probe(settings, args.batch, args.events, args.warmup, args.profile))
    print(f"batch {args.batch}: {ms:.3f} ms CPU per event over {args.events} events")


if __name__ == "__main__":
    main()
