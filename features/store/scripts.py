"""The store's Lua scripts (package data under ``features/store/lua/``) and how they are called.

Each script is shared function files followed by an entry file: ``apply_event_fn.lua`` (the
per-event write) opens both apply scripts, ``partition_fn.lua`` (a partition's fence and
watermark) the batch script and the cluster's per-partition scripts, ``store_session_fn.lua``
(the per-session write) both result scripts, ``attribution_fn.lua`` (a session's attribution
read and save) all four, so the logic the back-ends share is written once.

:class:`ScriptCaller` runs them on a client: EVALSHA (a single call, or queued in a pipeline),
and when the server lost its script cache (restart, failover, ``SCRIPT FLUSH``) it loads the
scripts and runs the call again. That is safe because every script here is idempotent: an event
already applied answers as a duplicate, a list already stored is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Final, TypeAlias

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import NoScriptError

from features.store.base import as_text
from nowplaying.clients import AsyncRedisClient

AnyPipeline: TypeAlias = Pipeline | ClusterPipeline


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A script's source and the SHA1 the server knows it by (computed once: every call of the
    script names it, and hashing the source per call was measurable in the worker's profile)."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def lua_script(*parts: str) -> LuaScript:
    """The script of ``parts`` (files under ``features/store/lua/``: function files, then the
    entry file, which names the script)."""
    folder = files("features.store").joinpath("lua")
    source = "".join(folder.joinpath(part).read_text() for part in parts)
    return LuaScript(parts[-1].removesuffix(".lua"), source)


#: One event (Redis Cluster path).
APPLY_EVENT: Final = lua_script("apply_event_fn.lua", "attribution_fn.lua", "apply_event.lua")
#: A whole batch of events, fences and watermarks included (single-server path).
APPLY_BATCH: Final = lua_script(
    "apply_event_fn.lua", "attribution_fn.lua", "partition_fn.lua", "apply_batch.lua"
)
#: A partition's fence before a batch (Redis Cluster path).
CHECK_PARTITION: Final = lua_script("partition_fn.lua", "check_partition.lua")
#: A partition's watermark after a batch (Redis Cluster path).
ADVANCE_PARTITION: Final = lua_script("partition_fn.lua", "advance_partition.lua")
#: One session's state and lists (Redis Cluster path).
STORE_RESULTS: Final = lua_script("store_session_fn.lua", "attribution_fn.lua", "store_results.lua")
#: Everything ``write_results`` stores (single-server path).
WRITE_BATCH: Final = lua_script("store_session_fn.lua", "attribution_fn.lua", "write_batch.lua")


class ScriptCaller:
    """Calls ``scripts`` on ``redis``, loading them again whenever the server lost them."""

    def __init__(self, redis: AsyncRedisClient, scripts: Sequence[LuaScript]) -> None:
        self._redis = redis
        self._scripts = tuple(scripts)

    async def load(self) -> None:
        """Load the scripts into the server's script cache (all primaries on a cluster)."""
        for script in self._scripts:
            loaded = await self._redis.script_load(script.source)
            if as_text(loaded) != script.sha:  # pragma: no cover - would be a Redis bug
                raise RuntimeError(f"unexpected sha {loaded!r} for script {script.name}")

    async def call(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One EVALSHA; when the server lost the scripts, load them and call again."""
        try:
            return await self._redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load()
            return await self._redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def run_pipeline(
        self, build: Callable[[AnyPipeline], None], *, raise_on_error: bool
    ) -> list[Any]:
        """Run a pipeline (``transaction=False``: one round trip, split by slot on a cluster);
        when the server lost the scripts, load them and run it again. A reply that is an error
        is raised (the server is unhappy: OOM, LOADING, ...; the caller retries) unless it is a
        WRONGTYPE and ``raise_on_error`` is False: then it is returned in its place."""
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            build(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in replies):
                await self.load()
                continue
            break
        for reply in replies:
            if isinstance(reply, Exception) and (
                raise_on_error or not str(reply).startswith("WRONGTYPE")
            ):
                raise reply
        return replies


def queue_script(pipe: AnyPipeline, script: LuaScript, keys: Sequence[str], *args: Any) -> None:
    """Queue an EVALSHA. Through ``execute_command``: redis-py's cluster pipeline refuses its
    ``evalsha`` method (it cannot know the keys share a slot), but routes the raw command by
    its keys, which here always share the session's hash tag."""
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
