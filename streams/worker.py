"""``nowplaying worker``: the Faust app that turns play events into Now Playing lists.

One agent consumes ``play-events`` as raw bytes and puts every event into a
:class:`streams.batching.Batcher`; a processing loop, started by the agent, takes micro-batches
from it (everything that arrived while the last batch was processed, at most
``settings.batch_max_events``) and hands each to :class:`streams.pipeline.Pipeline`, which
validates, updates Redis, ranks and publishes, retrying Redis and Kafka failures forever. No
timer: an idle worker takes an event the moment it arrives, a busy one takes bigger batches.

Offsets. Faust commits the offsets of *acked* messages (periodically, on rebalance and on stop),
and its stream acks an event as soon as the agent moves on to the next one. To commit only what
is done, the agent holds one extra reference on every message it receives (``Message.incref``)
and the processing loop releases it (``Message.ack``) only after :meth:`Pipeline.process_batch`
returned for the message's batch, that is after the effects are durable in Redis and Kafka
acknowledged every produced record. A batch interrupted by a crash or a cancellation is never
acked, so it is redelivered; the Redis dedupe makes that harmless.

Shutdown (SIGTERM/SIGINT, handled by mode's Worker) and rebalances: Faust stops fetching and
waits until every message that reached the agent is acked (``stream_wait_empty``), so the
buffered events and the batch in flight are processed first; it then commits and stops the agent,
the consumer and the producer; the worker then closes Redis.

A/B test (``NP_MODEL_VARIANTS``, :mod:`models.experiments`): every variant's model is loaded once
at start-up (a bad spec or a missing version stops the worker before it consumes anything); each
listener's lists come from the model of the listener's variant.

HTTP on ``settings.worker_metrics_port`` (Faust's web server): ``/metrics`` (Prometheus),
``/healthz`` (the process is up) and ``/readyz`` (503 naming the failing dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import tempfile
import time
from collections.abc import AsyncIterable, Awaitable, Sequence
from pathlib import Path
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from features.store import FeatureStore, SessionCache
from models.experiments import (
    Experiment,
    ExperimentError,
    experiment_from,
    load_variant_recommenders,
)
from models.recommender import Recommender
from models.registry import resolve_version_dir
from nowplaying import metrics
from nowplaying.clients import async_redis_client, faust_broker_credentials, faust_broker_urls
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from streams.batching import Batcher
from streams.faust_kafka import use_idempotent_producer
from streams.pipeline import BatchResult, Pipeline, RawMessage

log = logging.getLogger(__name__)

#: Batches whose Kafka acknowledgements may be awaited while the next batch is processed.
MAX_BATCHES_AWAITING_ACKS = 4
#: How long /readyz waits for Redis to answer PING.
READY_PING_TIMEOUT_S = 1.0


class FaustPublisher:
    """Publishes through the app's own Kafka producer (acks=all, idempotent); returns the
    delivery future."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        fut: Awaitable[Any] = await self._app.producer.send(topic, key, value, None, None, None)
        return fut


class WorkerRuntime:
    """The worker's clients and the pipeline; created once in :func:`run`, injected into the app."""

    def __init__(
        self,
        settings: Settings,
        redis: Any,
        recommender: Recommender,
        experiment: Experiment | None = None,
        variants: dict[str, Recommender] | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.recommender = recommender
        self.experiment = experiment
        self.variants = variants
        self.store = FeatureStore(
            redis,
            Keys(settings.redis_key_prefix),
            settings.session_ttl_seconds,
            settings.max_session_events,
            SessionCache(settings.session_cache_sessions),
        )
        self.pipeline: Pipeline | None = None
        self.positions: dict[tuple[str, int], int] = {}

    def attach(self, app: faust.App) -> None:
        self.pipeline = Pipeline(
            self.settings,
            self.store,
            self.recommender,
            FaustPublisher(app),
            variants=self.variants,
            assigner=self.experiment,
        )

    @property
    def variant_versions(self) -> dict[str, str] | None:
        """The A/B test's model version by variant name (None outside a test)."""
        if self.variants is None:
            return None
        return {name: r.model_version for name, r in self.variants.items()}

    async def consume(self, events: AsyncIterable[Any], consumer: Any) -> None:
        """The agent's body: hold and buffer every event of the stream; a processing loop
        (started here, stopped with the agent) takes the batches."""
        s = self.settings
        batcher: Batcher[Any] = Batcher(
            s.batch_max_events,
            linger_seconds=s.batch_within_seconds,
            linger_after=s.batch_linger_after_events,
        )
        processor = asyncio.ensure_future(self._process_batches(batcher, consumer))
        try:
            async for event in events:
                event.message.incref()  # hold: the stream's own ack must not release the offset
                await batcher.put(event)
                if processor.done():  # it never returns; an exception is a bug: surface it
                    processor.result()
            await batcher.drained()
        finally:
            processor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await processor

    async def _process_batches(self, batcher: Batcher[Any], consumer: Any) -> None:
        """Take and process batches; each batch's Kafka acknowledgements are awaited (and its
        events released) in a task of its own while the next batch is processed, at most
        ``MAX_BATCHES_AWAITING_ACKS`` at a time."""
        awaiting: set[asyncio.Task[None]] = set()
        try:
            while True:
                events = await batcher.take()
                try:
                    delivered = await self.start(events)
                except BaseException:
                    batcher.done()
                    raise
                awaiting.add(
                    asyncio.ensure_future(self._release(events, delivered, consumer, batcher))
                )
                for done in [t for t in awaiting if t.done()]:
                    awaiting.discard(done)
                    done.result()  # never fails (the pipeline retries): if one did, surface it
                if len(awaiting) >= MAX_BATCHES_AWAITING_ACKS:
                    await asyncio.wait(awaiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in awaiting:  # cancelled: those events stay unacked and are redelivered
                task.cancel()

    async def _release(
        self,
        events: Sequence[Any],
        delivered: Awaitable[None],
        consumer: Any,
        batcher: Batcher[Any],
    ) -> None:
        try:
            await delivered
            self.release(events, consumer)
        finally:
            batcher.done()

    async def start(self, events: Sequence[Any]) -> Awaitable[None]:
        """Start one batch of held Faust events (see :meth:`Pipeline.start_batch`)."""
        assert self.pipeline is not None
        result, delivered = await self.pipeline.start_batch([_raw(e.message) for e in events])
        self._log_result(result)
        return delivered

    def release(self, events: Sequence[Any], consumer: Any) -> None:
        """The batch is done: let its offsets be committed."""
        for event in events:
            event.message.ack(consumer)  # release: now the offset may be committed
            tp = event.message.tp
            key = (tp.topic, tp.partition)
            self.positions[key] = max(self.positions.get(key, 0), event.message.offset + 1)

    def _log_result(self, result: BatchResult) -> None:
        if result.dead_letters or result.duplicates:
            log.info(
                "batch of %d: %d applied, %d duplicates, dead letters %s",
                result.messages,
                result.applied,
                result.duplicates,
                result.dead_letters,
            )

    async def readiness(self) -> dict[str, str]:
        """Failing dependencies by name (empty when ready)."""
        failing: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.redis.ping(), READY_PING_TIMEOUT_S)
        except Exception as exc:
            failing["redis"] = f"{type(exc).__name__}: {exc}"[:200]
        if self.pipeline is None:
            failing["model"] = "not loaded"
        else:
            # e.g. Kafka refusing the batch's records: the worker is retrying, not progressing
            failing |= {k: v for k, v in self.pipeline.failing.items() if k not in failing}
        return failing


def _raw(message: Any) -> RawMessage:
    ts = message.timestamp
    return RawMessage(
        value=message.value,
        key=message.key,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=None if ts is None else int(ts * 1000),
    )


def build_app(settings: Settings, runtime: WorkerRuntime, datadir: Path) -> faust.App:
    """The Faust app: one agent over ``play-events``, the web views, the lag timer."""
    session_timeout = settings.worker_session_timeout_seconds
    app = faust.App(
        settings.consumer_group,
        broker=faust_broker_urls(settings),
        broker_credentials=faust_broker_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(datadir),
        topic_allow_declare=False,  # topics are created by `nowplaying topics`
        topic_disable_leader=True,  # no tables, no leader election: no internal topics
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_timeout,
        broker_heartbeat_interval=min(3.0, session_timeout / 3),
        producer_acks=-1,
        stream_wait_empty=True,
        web_enabled=True,
        web_port=settings.worker_metrics_port,
        web_bind=settings.worker_metrics_host,
        web_host=settings.worker_metrics_host,
        web_stats_enabled=False,
    )
    use_idempotent_producer(app)
    runtime.attach(app)
    topic = app.topic(
        settings.topic_play_events, value_serializer="raw", key_serializer="raw", internal=False
    )

    @app.agent(topic, name="play-events")
    async def play_events(stream: faust.StreamT[bytes]) -> None:
        await runtime.consume(cast(Stream[bytes], stream).events(), app.consumer)

    async def update_lag() -> None:
        _update_lag(app, runtime)

    app.timer(settings.worker_lag_interval_seconds)(update_lag)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            failing = await runtime.readiness()
            body = {
                "status": "ready" if not failing else "not ready",
                "failing": failing,
                "model_version": runtime.recommender.model_version,
                "variants": runtime.variant_versions,
            }
            return self.json(body, status=200 if not failing else 503)

    async def close_redis(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        log.info("closing Redis")
        await runtime.redis.aclose()

    app.on_before_shutdown.connect(close_redis)
    return app


def _update_lag(app: faust.App, runtime: WorkerRuntime) -> None:
    """Messages behind the high watermark, per assigned partition we have a position for."""
    try:
        assignment = app.consumer.assignment()
    except Exception:  # not started or rebalancing
        return
    for tp in assignment:
        position = runtime.positions.get((tp.topic, tp.partition))
        try:
            highwater = app.consumer.highwater(tp)
        except Exception:
            continue
        if position is not None and highwater is not None:
            lag = max(0, highwater - position)
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)


def load_recommender(settings: Settings) -> Recommender:
    version_dir = resolve_version_dir(settings.model_dir, settings.model_version)
    recommender = Recommender.load(
        version_dir, intra_op_threads=settings.ort_intra_op_threads, candidates=settings.candidates
    )
    metrics.MODEL_INFO.info(
        {
            "version": recommender.model_version,
            "feature_version": str(recommender.feature_version),
            "path": str(version_dir),
        }
    )
    return recommender


def load_experiment(settings: Settings) -> tuple[Experiment, dict[str, Recommender]] | None:
    """The A/B test of ``NP_MODEL_VARIANTS`` with every variant's model loaded (None when the
    spec is empty). Raises :class:`ExperimentError` on a bad spec or a model that does not load."""
    experiment = experiment_from(settings.model_variants, settings.experiment_salt)
    if experiment is None:
        return None
    variants = load_variant_recommenders(
        experiment,
        settings.model_dir,
        intra_op_threads=settings.ort_intra_op_threads,
        candidates=settings.candidates,
    )
    shares = ",".join(
        f"{v.name}={variants[v.name].model_version}:{v.weight}" for v in experiment.variants
    )
    first = variants[experiment.variants[0].name]
    metrics.MODEL_INFO.info(
        {
            "version": first.model_version,
            "feature_version": str(first.feature_version),
            "path": str(settings.model_dir / first.model_version),
            "variants": shares,
            "experiment_salt": settings.experiment_salt,
        }
    )
    return experiment, variants


def _load_models(
    settings: Settings,
) -> tuple[Recommender, Experiment | None, dict[str, Recommender] | None]:
    """The single model, or the A/B test's variants (the first variant's model standing for
    the worker's ``model_version`` in /readyz)."""
    loaded = load_experiment(settings)
    if loaded is None:
        return load_recommender(settings), None, None
    experiment, variants = loaded
    if settings.model_version:
        log.warning("NP_MODEL_VARIANTS is set: NP_MODEL_VERSION is ignored")
    for v in experiment.variants:
        log.info(
            "A/B variant %s: model %s, weight %d/%d",
            v.name,
            variants[v.name].model_version,
            v.weight,
            experiment.total_weight,
        )
    return variants[experiment.variants[0].name], experiment, variants


def _free_port(settings: Settings) -> int:
    with socket.socket() as sock:
        sock.bind((settings.worker_metrics_host, 0))
        return int(sock.getsockname()[1])


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``nowplaying worker``."""
    started = time.monotonic()
    try:
        recommender, experiment, variants = _load_models(settings)
    except ExperimentError as exc:
        log.error("bad A/B test (NP_MODEL_VARIANTS=%r): %s", settings.model_variants, exc)
        return 2
    except Exception as exc:
        log.error("cannot load the model from %s: %s", settings.model_dir, exc)
        return 2
    log.info("model %s loaded in %.2f s", recommender.model_version, time.monotonic() - started)
    if settings.worker_metrics_port == 0:  # any free port (Faust's web server needs a number)
        settings = settings.model_copy(update={"worker_metrics_port": _free_port(settings)})
    log.info(
        "HTTP (/metrics /healthz /readyz) on %s:%d",
        settings.worker_metrics_host,
        settings.worker_metrics_port,
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    redis = async_redis_client(settings)
    runtime = WorkerRuntime(settings, redis, recommender, experiment, variants)
    with tempfile.TemporaryDirectory(prefix="nowplaying-faust-") as datadir:
        app = build_app(settings, runtime, Path(datadir))
        worker = faust.Worker(app, loop=loop, loglevel=settings.log_level)
        # At WARNING and above, Faust's progress spinner lowers the root logger to DEBUG (its
        # handler spins on every record), so every library's debug call would build a record:
        # measured at several % of the worker's CPU. No spinner: the level is what was asked.
        worker.spinner = None
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0
