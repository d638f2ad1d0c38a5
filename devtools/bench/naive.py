"""The naive implementation: what a user would write by hand, for comparison.

An aiokafka consume loop that handles one message at a time: reads the session's state from a
Redis hash with one HGET per feature, applies the event, writes every feature back with one HSET
each, builds the same candidates and feature rows as the worker, scores them with LightGBM's own
``Booster.predict``, and publishes the list with ``send_and_wait``. Same features, same model,
same candidates as the stream worker, so the lists are of the same quality; no batching, no
script, no ONNX.

Run as ``python -m devtools.bench.naive`` with the worker's ``NP_*`` settings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from devtools.bench.kafka_io import kafka_client_options, producer_for
from features.artifacts import TrackArtifacts
from features.candidates import SOURCES, generate_candidates
from features.context import state_context
from features.rows import rows_for
from features.session import SessionState, apply_event, to_session_event
from models.registry import LIGHTGBM_FILE, resolve_version_dir
from nowplaying.clients import async_redis_client
from nowplaying.events import (
    Recommendation,
    RecommendationMessage,
    Rejection,
    TrackStart,
    parse_play_event,
)
from nowplaying.settings import Settings

FIELDS = [f.name for f in dataclasses.fields(SessionState)]


def booster_path(version_dir: Path) -> Path:
    path = version_dir / LIGHTGBM_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: retrain with `nowplaying train`")
    return path


def encode_field(value: object) -> str:
    if isinstance(value, frozenset):
        return json.dumps(sorted(value))
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return json.dumps(value)


def decode_state(values: dict[str, Any]) -> SessionState:
    """The state from its per-field values (JSON text each; missing fields keep defaults)."""
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        if raw is None:
            continue
        value = json.loads(raw)
        if name == "played":
            value = frozenset(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return SessionState(**kwargs)


class NaiveWorker:
    def __init__(self, settings: Settings, redis: Any, producer: Any, version_dir: Path) -> None:
        self.settings = settings
        self.redis = redis
        self.producer = producer
        self.version = version_dir.name
        self.booster = lgb.Booster(model_file=str(booster_path(version_dir)))
        self.artifacts = TrackArtifacts.load(version_dir)
        self.prefix = settings.redis_key_prefix

    async def handle(self, value: bytes) -> None:
        ev = parse_play_event(value, self.settings.max_event_bytes)
        if isinstance(ev, Rejection):
            return
        seen = f"{self.prefix}:naive:{ev.session_id}:seen"
        if await self.redis.sismember(seen, ev.event_id):
            return
        await self.redis.sadd(seen, ev.event_id)
        key = f"{self.prefix}:naive:{ev.session_id}:state"
        values = {name: await self.redis.hget(key, name) for name in FIELDS}
        state = apply_event(decode_state(values), to_session_event(ev))
        for name in FIELDS:
            await self.redis.hset(key, name, encode_field(getattr(state, name)))
        await self.redis.expire(key, self.settings.session_ttl_seconds)
        await self.redis.expire(seen, self.settings.session_ttl_seconds)
        if isinstance(ev, TrackStart):
            await self.recommend(ev, state)

    async def recommend(self, ev: TrackStart, state: SessionState) -> None:
        ctx = state_context(state, self.artifacts)
        cands = generate_candidates(ctx, self.artifacts, self.settings.candidates)
        rows = rows_for(ctx, cands.tracks, self.artifacts)
        scores = np.asarray(self.booster.predict(rows, num_threads=1))
        order = np.argsort(-scores, kind="stable")[: self.settings.top_k]
        recs = [
            Recommendation(
                track_id=self.artifacts.track_ids[int(cands.tracks[i])],
                score=float(scores[i]),
                rank=rank,
                source=SOURCES[int(cands.sources[i])],
            )
            for rank, i in enumerate(order, start=1)
        ]
        msg = RecommendationMessage(
            user_id=ev.user_id,
            session_id=ev.session_id,
            trigger_event_id=ev.event_id,
            model_version=self.version,
            generated_at=int(time.time() * 1000),
            recommendations=recs,
        )
        body = msg.model_dump_json().encode()
        await self.redis.set(f"{self.prefix}:naive:{ev.user_id}:latest", body)
        await self.producer.send_and_wait(
            self.settings.topic_recommendations, body, key=ev.user_id.encode()
        )


async def _main() -> int:
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    settings = Settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    version_dir = resolve_version_dir(settings.model_dir, settings.model_version)
    redis = async_redis_client(settings)
    producer = producer_for(settings)
    consumer = AIOKafkaConsumer(
        settings.topic_play_events,
        **kafka_client_options(settings),
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
    )
    worker = NaiveWorker(settings, redis, producer, version_dir)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(consumer.getone(), timeout=0.5)
            except TimeoutError:
                continue
            if msg.value is not None:
                await worker.handle(msg.value)
    finally:
        await consumer.stop()
        await producer.stop()
        await redis.aclose()
    return 0


def main() -> int:
    return asyncio.run(_main())


if __name__ == "__main__":
    sys.exit(main())
