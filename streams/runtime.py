"""The worker's runtime: its clients, the pipeline and the batch loop, built in one step.

:func:`start_runtime` is the worker's start-up hook: it creates the Redis client and the feature
store, the sensors, the partition ownership (:mod:`streams.ownership`), the pipeline (publishing
through the Faust app's producer, writing with the ownership's epochs) and the batch loop, and
returns them as one fully initialised :class:`WorkerRuntime` that the app's agent, views, timer
and rebalance hooks share. The app's shutdown hook closes the Redis client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import faust

from features.session_cache import SessionCache
from features.store import FeatureStore, feature_store_for
from models.recommender import Recommender
from models.skip.auto import auto_steering_for
from models.steered import SteeredRecommender
from nowplaying.clients import AsyncRedisClient, async_redis_client
from nowplaying.settings import Settings
from streams.attribution import attribution_for
from streams.batch_loop import BatchLoop
from streams.instrumentation import CountingSensor, PipelineSensor, PrometheusSensor, Sensors
from streams.loading import LoadedModels
from streams.offsets import HeldOffsets
from streams.ownership import Ownership
from streams.pipeline import Pipeline
from streams.reload import ModelWatcher, RefreshingClaimer
from streams.retry import Retrier
from streams.steering import steered


class FaustPublisher:
    """Publishes through the app's own Kafka producer (acks=all, idempotent); returns the
    delivery future."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        fut: Awaitable[Any] = await self._app.producer.send(topic, key, value, None, None, None)
        return fut


@dataclass(frozen=True, slots=True)
class WorkerRuntime:
    """Everything the running worker uses, created once by :func:`start_runtime`."""

    settings: Settings
    models: LoadedModels
    redis: AsyncRedisClient
    pipeline: Pipeline
    offsets: HeldOffsets
    batches: BatchLoop
    sensor: PipelineSensor
    store: FeatureStore
    ownership: Ownership
    #: Retries the partition claims of a rebalance (Redis) like the pipeline's calls.
    retrier: Retrier
    #: The models served now (hot reload); ``models`` is what the worker started with.
    watcher: ModelWatcher
    #: Claims partitions after a registry refresh.
    claimer: RefreshingClaimer


def start_runtime(settings: Settings, models: LoadedModels, app: faust.App) -> WorkerRuntime:
    """The clients, the pipeline and the batch loop of one worker process."""
    redis = async_redis_client(settings)
    store = feature_store_for(settings, redis, SessionCache(settings.session_cache_sessions))
    counts = CountingSensor()
    sensor = Sensors(PrometheusSensor(), counts)
    ownership = Ownership()

    def steered_model(recommender: Recommender) -> SteeredRecommender:
        auto = auto_steering_for(
            settings.model_dir / recommender.model_version,
            settings.auto_steering,
            intra_op_threads=settings.ort_intra_op_threads,
        )
        return steered(recommender, auto)

    watcher = ModelWatcher(settings, models, wrap=steered_model)
    claimer = RefreshingClaimer(store, watcher)
    pipeline = Pipeline(
        settings,
        store,
        models.recommender,
        FaustPublisher(app),
        sensor=sensor,
        owner=ownership,
        models=watcher,
        attribution=attribution_for(settings, sensor),
    )
    offsets = HeldOffsets()
    batches = BatchLoop(
        settings, pipeline, offsets, counts, ownership=ownership, claimer=claimer, sensor=sensor
    )
    return WorkerRuntime(
        settings,
        models,
        redis,
        pipeline,
        offsets,
        batches,
        sensor,
        store,
        ownership,
        Retrier(settings, sensor, asyncio.sleep),
        watcher,
        claimer,
    )
