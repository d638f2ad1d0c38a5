"""``nowplaying worker``: the Faust app that turns play events into Now Playing lists.

The entry point loads the models (:mod:`streams.loading`), builds the Faust app and the runtime
(:func:`streams.runtime.start_runtime`: the clients, the pipeline, the batch loop) and wires
them together: one agent consumes ``play-events`` as raw bytes into the batch loop
(:mod:`streams.batch_loop`, offsets held by :mod:`streams.offsets` until each batch is durable),
the HTTP views (:mod:`streams.web`), the consumer-lag timer (:mod:`streams.lag`) and the
partition claims of each rebalance (:mod:`streams.ownership`).

Shutdown (SIGTERM/SIGINT, handled by mode's Worker) and rebalances: Faust stops fetching and
waits until every message that reached the agent is acked (``stream_wait_empty``), so the
buffered events and the batch in flight are processed first; it then commits and stops the agent,
the consumer and the producer; the worker then closes Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import tempfile
import time
from collections.abc import Set
from pathlib import Path
from typing import Any, Final, cast

import faust
import uvloop
from faust.streams import Stream
from faust.types import TP

from models.experiments import ExperimentError
from nowplaying.clients import faust_broker_credentials, faust_broker_urls
from nowplaying.settings import Settings
from streams.faust_kafka import QuietMonitor, use_worker_transport
from streams.lag import add_lag_timer
from streams.loading import load_models
from streams.ownership import take_over
from streams.runtime import WorkerRuntime, start_runtime
from streams.web import add_views

log = logging.getLogger(__name__)


def faust_app(settings: Settings, datadir: Path) -> faust.App:
    """The bare Faust app: raw bytes, no tables, the worker's HTTP port, an idempotent producer
    with acks from every in-sync replica."""
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
        monitor=QuietMonitor(),
    )
    use_worker_transport(app)
    app.task(freeze_startup_objects)
    return app


#: Allocations (net of deallocations) of container objects between two collections of the
#: youngest generation (Python's default: 700). The worker allocates per message and per batch
#: (Faust's events, futures, the batch's lists); most of it is freed by reference counting.
YOUNG_COLLECTION_THRESHOLD: Final = 10_000


async def freeze_startup_objects() -> None:
    """Once the app has started: collect, then move every object alive now (the models, the
    clients, Faust's and mode's services) out of the garbage collector's generations, and let
    the youngest generation grow to :data:`YOUNG_COLLECTION_THRESHOLD` objects before it is
    collected. The start-up objects live as long as the process, and each full collection would
    otherwise traverse them all again (measured: 130,000-150,000 tracked objects, the collector
    at 4.2 % of the worker's CPU; 2.1-2.5 % after the freeze, with Python's default threshold
    of 700 young objects; 0.7 % with both). Frozen objects dropped later are still freed by
    reference counting (the start-up model after a hot reload is: it holds no reference cycle);
    only a cycle among them would stay."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def wire(app: faust.App, runtime: WorkerRuntime) -> None:
    """The agent over ``play-events``, the web views, the lag timer and the shutdown hook."""
    settings = runtime.settings
    topic = app.topic(
        settings.topic_play_events, value_serializer="raw", key_serializer="raw", internal=False
    )

    @app.agent(topic, name="play-events")
    async def play_events(stream: faust.StreamT[bytes]) -> None:
        await runtime.batches.consume(cast(Stream[bytes], stream).events(), app.consumer)

    add_views(app, runtime)
    add_lag_timer(app, runtime.offsets, runtime.sensor, settings.worker_lag_interval_seconds)
    if settings.model_reload_seconds > 0:

        async def watch_registry() -> None:
            await runtime.watcher.watch(settings.model_reload_seconds)

        app.task(watch_registry)

    async def close_redis(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        log.info("closing Redis")
        await runtime.redis.aclose()

    app.on_before_shutdown.connect(close_redis)
    wire_ownership(app, runtime)


def wire_ownership(app: faust.App, runtime: WorkerRuntime) -> None:
    """Claim the ``play-events`` partitions of each assignment (Faust sends the signal before
    the streams resume) and forget the revoked ones (sent once their messages are acked)."""
    topic = runtime.settings.topic_play_events

    async def claim(sender: Any, /, *args: Any, signal: Any, **__: Any) -> None:
        assigned = cast(Set[TP], args[0])
        ours = {tp for tp in assigned if tp.topic == topic}
        await take_over(runtime.ownership, runtime.claimer, app.consumer, ours, runtime.retrier)

    async def forget(sender: Any, /, *args: Any, signal: Any, **__: Any) -> None:
        revoked = cast(Set[TP], args[0])
        runtime.ownership.revoke((tp.topic, tp.partition) for tp in revoked)

    app.on_partitions_assigned.connect(claim)
    app.on_partitions_revoked.connect(forget)


def worker_event_loop() -> asyncio.AbstractEventLoop:
    """The worker's event loop: uvloop's. Its policy is installed for the whole process, so the
    thread Faust runs its Kafka consumer in (mode's ``ServiceThread`` makes a new loop) gets a
    uvloop loop too."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def _free_port(settings: Settings) -> int:
    with socket.socket() as sock:
        sock.bind((settings.worker_metrics_host, 0))
        return int(sock.getsockname()[1])


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``nowplaying worker``."""
    started = time.monotonic()
    try:
        models = load_models(settings)
    except ExperimentError as exc:
        log.error("bad A/B test (NP_MODEL_VARIANTS=%r): %s", settings.model_variants, exc)
        return 2
    except Exception as exc:
        log.error("cannot load the model from %s: %s", settings.model_dir, exc)
        return 2
    version = models.recommender.model_version
    log.info("model %s loaded in %.2f s", version, time.monotonic() - started)
    if settings.worker_metrics_port == 0:  # any free port (Faust's web server needs a number)
        settings = settings.model_copy(update={"worker_metrics_port": _free_port(settings)})
    log.info(
        "HTTP (/metrics /healthz /readyz) on %s:%d",
        settings.worker_metrics_host,
        settings.worker_metrics_port,
    )
    loop = worker_event_loop()
    with tempfile.TemporaryDirectory(prefix="nowplaying-faust-") as datadir:
        app = faust_app(settings, Path(datadir))
        wire(app, start_runtime(settings, models, app))
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
