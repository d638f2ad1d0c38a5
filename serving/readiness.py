"""Readiness: Redis answers PING, and a model version is resolvable in the registry.

The API does not load the ONNX model itself; "model loaded" means the registry names a version
folder with its ``metadata.json``, the version the worker serves.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel, Field

from models.registry import METADATA_FILE, resolve_version_dir
from nowplaying.clients import AsyncRedisClient
from nowplaying.settings import Settings

#: How long /readyz waits for Redis before calling it down.
REDIS_PING_TIMEOUT_SECONDS = 1.0


class DependencyStatus(BaseModel):
    ok: bool
    detail: str = Field(description="What was checked, or why it failed.")


class Readiness(BaseModel):
    ready: bool
    model_version: str | None = None
    dependencies: dict[str, DependencyStatus]

    @property
    def failing(self) -> list[str]:
        return [name for name, status in self.dependencies.items() if not status.ok]


async def redis_status(redis: AsyncRedisClient) -> DependencyStatus:
    try:
        pong = await asyncio.wait_for(redis.ping(), REDIS_PING_TIMEOUT_SECONDS)
    except TimeoutError:
        return DependencyStatus(ok=False, detail="PING timed out")
    except Exception as exc:  # a probe reports any failure as data
        return DependencyStatus(ok=False, detail=f"PING failed: {type(exc).__name__}: {exc}")
    return DependencyStatus(ok=bool(pong), detail="PING ok" if pong else "PING refused")


def resolve_model_version(settings: Settings) -> tuple[str | None, DependencyStatus]:
    """The served model version, from the registry's version folder and its metadata."""
    try:
        version_dir = resolve_version_dir(settings.model_dir, settings.model_version)
        metadata: dict[str, Any] = json.loads((version_dir / METADATA_FILE).read_text())
    except Exception as exc:  # a probe reports any failure as data
        return None, DependencyStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")
    version = str(metadata.get("version") or version_dir.name)
    return version, DependencyStatus(ok=True, detail=f"version {version} in {version_dir}")


async def check_readiness(redis: AsyncRedisClient, settings: Settings) -> Readiness:
    redis_ok = await redis_status(redis)
    version, model_ok = await asyncio.to_thread(resolve_model_version, settings)
    deps = {"redis": redis_ok, "model": model_ok}
    return Readiness(
        ready=all(d.ok for d in deps.values()), model_version=version, dependencies=deps
    )
