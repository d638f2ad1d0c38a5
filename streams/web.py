"""The worker's HTTP views on ``settings.worker_metrics_port`` (Faust's web server):
``/metrics`` (Prometheus), ``/healthz`` (the process is up) and ``/readyz`` (the readiness
document of :mod:`nowplaying.readiness`, the API's too: 200 when ready, else 503 naming the
failing dependency).

The worker's dependencies: ``redis`` (answers PING, and the pipeline's last call did not fail),
``kafka`` (the pipeline's last produce did not fail; the detail says how many partitions the
consumer holds) and ``model`` (the models served now: loaded at start-up, the worker does not
run without one, and swapped by the hot reload, :mod:`streams.reload`).
"""

from __future__ import annotations

from collections.abc import Mapping

import faust
from faust.types import ConsumerT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from models.registry import latest_version
from nowplaying.readiness import DependencyStatus, Readiness, failure, redis_status
from streams.loading import LoadedModels
from streams.runtime import WorkerRuntime


async def worker_readiness(runtime: WorkerRuntime, consumer: ConsumerT) -> Readiness:
    failing = runtime.pipeline.failing  # e.g. Kafka refusing the batch's records: retrying
    redis = await redis_status(runtime.redis)
    if redis.ok and "redis" in failing:
        redis = failure(f"the last call failed: {failing['redis']}")
    models = runtime.watcher.models  # what is served now (hot reload swaps it)
    return Readiness.of(
        {
            "redis": redis,
            "kafka": kafka_status(consumer, failing),
            "model": model_status(models, latest_version(runtime.settings.model_dir)),
        },
        model_version=models.recommender.model_version,
        variants=None if models.ab_test is None else models.ab_test.versions,
    )


def kafka_status(consumer: ConsumerT, failing: Mapping[str, str]) -> DependencyStatus:
    try:
        partitions = len(consumer.assignment())
        held = f"the consumer holds {partitions} partition{'s' if partitions != 1 else ''}"
    except Exception as exc:  # not started or rebalancing: the state is data too
        held = f"no consumer assignment ({type(exc).__name__})"
    if "kafka" in failing:
        return failure(f"the last produce failed: {failing['kafka']}; {held}")
    return DependencyStatus(ok=True, detail=held)


def model_status(models: LoadedModels, latest: str | None = None) -> DependencyStatus:
    """The models served; ``latest``: what the registry's pointer names now."""
    pointer = "" if latest is None else f" (registry latest: {latest})"
    if models.ab_test is None:
        served = f"version {models.recommender.model_version}"
        return DependencyStatus(ok=True, detail=served + pointer)
    shares = ", ".join(f"{name}={v}" for name, v in models.ab_test.versions.items())
    return DependencyStatus(ok=True, detail=f"A/B test: {shares}{pointer}")


def add_views(app: faust.App, runtime: WorkerRuntime) -> None:
    """Register ``/metrics``, ``/healthz`` and ``/readyz`` on the app's web server."""

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
            readiness = await worker_readiness(runtime, app.consumer)
            return self.json(readiness.model_dump(mode="json"), status=readiness.status_code)
