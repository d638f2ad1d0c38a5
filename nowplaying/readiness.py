"""Readiness: one document for ``/readyz`` in every process (the worker and the API).

Each process checks its own dependencies and answers the same :class:`Readiness` JSON, 200 when
every dependency is ok and 503 otherwise::

    {"ready": false, "model_version": "2026...", "failing": ["redis"],
     "dependencies": {"redis": {"ok": false, "detail": "PING failed: ..."},
                      "model": {"ok": true, "detail": "..."}},
     "variants": null}

The probes here need only what every process has (a Redis client); a process adds its own
dependencies (the API: the model registry; the worker: its loaded model and Kafka).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel, Field, computed_field

#: How long /readyz waits for Redis before calling it down.
REDIS_PING_TIMEOUT_SECONDS = 1.0
#: Longest failure detail shown (an exception's text can be long).
MAX_DETAIL_CHARS = 200


class Pingable(Protocol):
    """What a readiness probe needs of a Redis client (``redis.asyncio`` single node or
    cluster)."""

    def ping(self) -> Awaitable[Any]: ...


class DependencyStatus(BaseModel):
    ok: bool
    detail: str = Field(description="What was checked, or why it failed.")


class Readiness(BaseModel):
    """What ``/readyz`` answers (200 when ``ready``, else 503)."""

    ready: bool
    model_version: str | None = Field(None, description="The model version served.")
    dependencies: dict[str, DependencyStatus]
    variants: dict[str, str] | None = Field(
        None, description="During an A/B test: each variant's model version (the worker)."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failing(self) -> list[str]:
        """The dependencies that are not ok."""
        return [name for name, status in self.dependencies.items() if not status.ok]

    @classmethod
    def of(
        cls,
        dependencies: Mapping[str, DependencyStatus],
        model_version: str | None = None,
        variants: Mapping[str, str] | None = None,
    ) -> Readiness:
        """Ready when every dependency is ok."""
        return cls(
            ready=all(d.ok for d in dependencies.values()),
            model_version=model_version,
            dependencies=dict(dependencies),
            variants=None if variants is None else dict(variants),
        )

    @property
    def status_code(self) -> int:
        return 200 if self.ready else 503


def failure(detail: str) -> DependencyStatus:
    """A failed dependency, its detail cut to :data:`MAX_DETAIL_CHARS`."""
    return DependencyStatus(ok=False, detail=detail[:MAX_DETAIL_CHARS])


def error_detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def redis_status(redis: Pingable) -> DependencyStatus:
    """Redis answers PING within :data:`REDIS_PING_TIMEOUT_SECONDS`."""
    try:
        pong = await asyncio.wait_for(redis.ping(), REDIS_PING_TIMEOUT_SECONDS)
    except TimeoutError:
        return failure("PING timed out")
    except Exception as exc:  # a probe reports any failure as data
        return failure(f"PING failed: {error_detail(exc)}")
    return DependencyStatus(ok=True, detail="PING ok") if pong else failure("PING refused")
