"""Stage benchmarks, each next to its limit measured in the same run, on the benchmark core.

* ranker: the recommender's onnxruntime session (as the stream configures it) vs LightGBM's own
  predict vs a bare onnxruntime call on a pre-built matrix (the floor), at 1/50/200/1000 rows;
  plus a whole ``Recommender.recommend`` per track start. The floor at 200 rows per track start
  gives the inference-only limit in events/s.
* features: the Redis update (the worker's Lua script) per event and per batch of 100, and the
  same update as 9 separate round trips, vs ``redis-benchmark`` SET rates on the same server.
* rows: context + candidates + feature rows for 200 candidates per track start (numpy), against
  its share of the budget (everything but the ranker may take 30 % of the worker's CPU).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from devtools.bench import ranker, targets
from devtools.bench.redis_baseline import run_redis_benchmark
from devtools.bench.report import Limit, Report, StageResult
from devtools.bench.targets import FLOOR_PER_START
from devtools.bench.timing import atime_per_call, on_bench_core, time_per_call
from devtools.bench.workload import bench_sessions, build_workload
from features.artifacts import TrackArtifacts
from features.candidates import generate_candidates
from features.context import state_context
from features.rows import rows_for
from features.session import SessionState, encode_event, fold_events, to_session_event
from features.store import feature_store_for
from models.labelled_sessions import session_events
from nowplaying.clients import async_redis_client
from nowplaying.events import PlayEvent, Rejection, TrackStart, parse_play_event
from nowplaying.keys import Keys
from nowplaying.settings import Settings

#: Everything but the ranker may take this share of the worker's CPU.
BUDGET_SHARE = targets.NON_RANKER_SHARE


# --- workload -----------------------------------------------------------------------------------


def sample_events(settings: Settings, n: int) -> list[PlayEvent]:
    sessions, _ = bench_sessions(settings, limit=max(50, n // 10))
    out: list[PlayEvent] = []
    for p in build_workload(sessions, n, tag=f"st{uuid.uuid4().hex[:6]}"):
        ev = parse_play_event(p.value)
        if not isinstance(ev, Rejection):
            out.append(ev)
    return out


def sample_states(settings: Settings, n: int) -> list[SessionState]:
    """States at every track start of real sessions (the states the worker ranks)."""
    sessions, _ = bench_sessions(settings, limit=max(20, n // 5))
    states: list[SessionState] = []
    for session in sessions:
        state = SessionState()
        for ev in session_events(session):
            state = fold_events([to_session_event(ev)], state)
            if isinstance(ev, TrackStart):
                states.append(state)
                if len(states) >= n:
                    return states
    return states


# --- features: the Redis update -----------------------------------------------------------------


async def features_stage(settings: Settings, report: Report, quick: bool) -> None:
    bench = run_redis_benchmark(settings.redis_url, requests=20_000 if quick else 200_000)
    if bench is None:
        report.notes.append("features: redis-benchmark not found (apt-get install redis-tools)")
        single_limit = pipelined_limit = float("nan")
    else:
        single_limit, pipelined_limit = bench.set_single_per_s, bench.set_pipelined_per_s
        report.limits += [
            Limit(
                "redis-benchmark SET -P 1",
                single_limit,
                "requests/s",
                "one client, one round trip per SET, same server",
            ),
            Limit(
                f"redis-benchmark SET -P {bench.pipeline}",
                pipelined_limit,
                "requests/s",
                f"one client, {bench.pipeline} SETs per pipeline, same server",
            ),
        ]
    events = sample_events(settings, 2000 if quick else 20_000)
    prefix = f"bench-stage-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    redis = async_redis_client(settings)
    store = feature_store_for(settings.model_copy(update={"redis_key_prefix": prefix}), redis)
    seconds = 0.3 if quick else 3.0
    try:
        await store.load_scripts()
        it = fresh_events(events)

        async def one() -> object:
            return await store.apply_events([next(it)])

        async def hundred() -> object:
            return await store.apply_events([next(it) for _ in range(100)])

        async def nine_trips() -> object:
            return await separate_round_trips(redis, keys, next(it), settings)

        per_event = await atime_per_call(one, seconds)
        per_batch = await atime_per_call(hundred, seconds)
        per_nine = await atime_per_call(nine_trips, seconds)
    finally:
        await delete_prefix(redis, prefix)
        await redis.aclose()
    report.stages += [
        StageResult(
            "features",
            "Lua update (dedupe, append, TTL), 1 per round trip",
            "per event",
            per_event * 1000,
            1 / per_event,
            "events/s",
            "redis-benchmark SET -P 1",
            single_limit,
        ),
        StageResult(
            "features",
            "Lua update of 100 events in one call (the worker's batch script)",
            "batch of 100",
            per_batch * 1000,
            100 / per_batch,
            "events/s",
            "redis-benchmark SET -P 100",
            pipelined_limit,
        ),
        StageResult(
            "features",
            "same update as 9 separate round trips",
            "per event",
            per_nine * 1000,
            1 / per_nine,
            "events/s",
            "redis-benchmark SET -P 1",
            single_limit,
        ),
    ]


def fresh_events(events: Sequence[PlayEvent]) -> Iterator[PlayEvent]:
    """The events over and over, each pass under new event ids, so that no call of a timed loop
    meets a duplicate (a duplicate costs far less than a new event)."""
    yield from events
    for k in itertools.count(1):
        for ev in events:
            yield ev.model_copy(update={"event_id": f"{ev.event_id}.r{k}"})


async def separate_round_trips(redis: Any, keys: Keys, ev: PlayEvent, settings: Settings) -> object:
    """The Lua script's work as a hand-written client does it: one awaited command at a time."""
    sid = ev.session_id
    ttl = settings.session_ttl_seconds
    if not await redis.sadd(keys.session_seen(sid), ev.event_id):
        return None
    await redis.rpush(keys.session_log(sid), encode_event(to_session_event(ev)))
    await redis.ltrim(keys.session_log(sid), -settings.max_session_events, -1)
    for key in (keys.session_log(sid), keys.session_seen(sid), keys.session_state(sid)):
        await redis.expire(key, ttl)
    await redis.expire(keys.session_recs(sid), ttl)
    records = await redis.lrange(keys.session_log(sid), 0, -1)
    return await redis.get(keys.session_state(sid)), records


async def delete_prefix(redis: Any, prefix: str) -> None:
    batch: list[Any] = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)


# --- rows ---------------------------------------------------------------------------------------


def rows_stage(
    version_dir: Path,
    states: Sequence[SessionState],
    n_candidates: int,
    report: Report,
    quick: bool,
) -> None:
    artifacts = TrackArtifacts.load(version_dir)
    it = iter(list(states) * 1000)

    def one() -> object:
        ctx = state_context(next(it), artifacts)
        cands = generate_candidates(ctx, artifacts, n_candidates)
        return rows_for(ctx, cands.tracks, artifacts)

    per_start = time_per_call(one, 0.3 if quick else 3.0)
    floor = report.limit(FLOOR_PER_START)
    # Rows may take at most BUDGET_SHARE / (1 - BUDGET_SHARE) of the ranker's time per start.
    budget_rate = (
        floor.value * (1 - BUDGET_SHARE) / BUDGET_SHARE if floor is not None else float("nan")
    )
    report.stages.append(
        StageResult(
            "rows",
            f"context + candidates + rows, {n_candidates} candidates",
            "per track start",
            per_start * 1000,
            1 / per_start,
            "track starts/s",
            "whole non-ranker budget",
            budget_rate,
        )
    )


# --- entry point --------------------------------------------------------------------------------


def run_stages(
    settings: Settings,
    version_dir: Path,
    states: Sequence[SessionState],
    report: Report,
    quick: bool,
) -> None:
    """Ranker, rows and feature-store stages, pinned to the benchmark core."""
    with on_bench_core():
        ranker.ranker_stage(settings, version_dir, states, report, quick)
        rows_stage(version_dir, states, settings.candidates, report, quick)
        asyncio.run(features_stage(settings, report, quick))
