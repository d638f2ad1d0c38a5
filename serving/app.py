"""The HTTP API and the live Now Playing page.

:func:`create_app` builds the FastAPI app. Its lifespan creates the Redis client (unless one is
injected, as tests do) and closes it on shutdown. Routes read what the stream worker wrote to
Redis; they never talk to Kafka or the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from time import perf_counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.store import (
    AsyncRedis,
    read_active_users,
    read_latest_recommendations,
    read_session_features,
)
from nowplaying.clients import async_redis_client
from nowplaying.events import ID_PATTERN, MAX_ID_CHARS, RecommendationMessage
from nowplaying.keys import Keys
from nowplaying.metrics import HTTP_LATENCY, HTTP_REQUESTS
from nowplaying.settings import Settings
from serving.errors import (
    error_response,
    error_responses,
    install_error_handlers,
    not_found,
)
from serving.queries import NowPlaying, read_now_playing
from serving.readiness import Readiness, check_readiness

STATIC_DIR = Path(__file__).parent / "static"


class IdConvertor(Convertor[str]):
    """A path parameter holding an id: anything, ``/`` and newlines included (validation
    refuses control characters with a 422 afterwards).

    The server decodes the path (``%2F`` too) before routing, so a plain ``{user_id}`` (no
    ``/``) does not match an id holding ``/`` and ``{user_id:path}`` (``.*``) not one holding a
    newline. Each route ends with its own fixed segment, so the match is still exact.
    """

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())
#: How a path takes an id: percent-encoded (UTF-8), ``/`` as ``%2F``.
_ID_IN_PATH = (
    "Any 1-128 characters but control characters, percent-encoded as UTF-8 ('/' as %2F). "
    "'.' and '..' cannot be sent by clients that remove dot segments (browsers)."
)
UserId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=ID_PATTERN,
        description=f"Listener id. {_ID_IN_PATH}",
        examples=["u-1", "ユーザー 3"],
    ),
]
SessionId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=ID_PATTERN,
        description=f"Session id. {_ID_IN_PATH}",
        examples=["s-1", "listener@example.com/2026-11-29"],
    ),
]


class Health(BaseModel):
    status: str = "ok"


class SessionFeatures(BaseModel):
    session_id: str
    features: dict[str, object] = Field(description="The session's named features.")


class ActiveUsers(BaseModel):
    users: list[str] = Field(description="Most recently active listeners first.")


def get_redis(request: Request) -> AsyncRedis:
    return request.app.state.redis


RedisDep = Annotated[AsyncRedis, Depends(get_redis)]


def create_app(settings: Settings, redis: AsyncRedis | None = None) -> FastAPI:
    """The API. ``redis``: an injected client (the caller closes it); default, one from settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis if redis is not None else async_redis_client(settings)
        app.state.redis = client
        try:
            yield
        finally:
            if redis is None:
                await client.aclose()

    app = FastAPI(
        title="nowplaying",
        summary="Now Playing recommendations, session features and a live page.",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware)
    app.include_router(api_routes(settings))
    app.include_router(ops_routes(settings))
    app.include_router(page_routes())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def api_routes(settings: Settings) -> APIRouter:
    keys = Keys(settings.redis_key_prefix)
    router = APIRouter(prefix="/v1", responses=error_responses(422, 503))

    @router.get(
        "/users/{user_id:id}/recommendations",
        response_model=RecommendationMessage,
        responses=error_responses(404),
        summary="The listener's latest Now Playing list",
    )
    async def user_recommendations(user_id: UserId, redis: RedisDep) -> RecommendationMessage:
        latest = await read_latest_recommendations(redis, keys, user_id)
        if latest is None:
            raise not_found(f"no recommendations for user '{user_id}'", user_id=user_id)
        return latest

    @router.get(
        "/sessions/{session_id:id}/features",
        response_model=SessionFeatures,
        responses=error_responses(404),
        summary="The session's current features, by name",
    )
    async def session_features_of(session_id: SessionId, redis: RedisDep) -> SessionFeatures:
        features = await read_session_features(redis, keys, session_id)
        if features is None:
            raise not_found(f"no features for session '{session_id}'", session_id=session_id)
        return SessionFeatures(session_id=session_id, features=features)

    @router.get(
        "/users/{user_id:id}/now-playing",
        response_model=NowPlaying,
        responses=error_responses(404),
        summary="The track now playing, recent plays and the latest list",
    )
    async def user_now_playing(user_id: UserId, redis: RedisDep) -> NowPlaying:
        view = await read_now_playing(redis, keys, user_id)
        if view.session_id is None and view.recommendations is None:
            raise not_found(f"nothing known about user '{user_id}'", user_id=user_id)
        return view

    @router.get(
        "/users/{user_id:id}/live",
        response_class=EventSourceResponse,
        summary="Server-sent 'snapshot' events (a NowPlaying JSON) whenever the view changes",
    )
    async def user_live(user_id: UserId, redis: RedisDep) -> AsyncIterator[ServerSentEvent]:
        async for event in live_events(redis, keys, user_id, settings.api_live_poll_seconds):
            yield event

    @router.get("/users", response_model=ActiveUsers, summary="Recently active listeners")
    async def active_users(
        redis: RedisDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> ActiveUsers:
        return ActiveUsers(users=await read_active_users(redis, keys, limit))

    return router


async def live_events(
    redis: AsyncRedis, keys: Keys, user_id: str, poll_seconds: float
) -> AsyncIterator[ServerSentEvent]:
    """A 'snapshot' event first, then one each time the listener's view changes.

    Redis failures become 'error' events; the stream keeps polling and recovers by itself.
    """
    yield ServerSentEvent(comment="live", retry=2000)
    last: str | None = None
    while True:
        try:
            payload = (await read_now_playing(redis, keys, user_id)).model_dump_json()
        except RedisError as exc:
            last = None
            yield ServerSentEvent(
                event="error",
                data={"code": "dependency_unavailable", "dependency": "redis", "reason": str(exc)},
            )
        else:
            if payload != last:
                last = payload
                yield ServerSentEvent(event="snapshot", raw_data=payload)
        await asyncio.sleep(poll_seconds)


def ops_routes(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Health, summary="The process is up")
    async def healthz() -> Health:
        return Health()

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses=error_responses(503),
        summary="Redis reachable and a model version resolvable",
    )
    async def readyz(redis: RedisDep) -> Readiness | JSONResponse:
        readiness = await check_readiness(redis, settings)
        if readiness.ready:
            return readiness
        failing = readiness.failing
        details: dict[str, Any] = {"failing": failing, **readiness.model_dump(mode="json")}
        return error_response(
            503, "dependency_unavailable", f"not ready: {', '.join(failing)} unavailable", details
        )

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Prometheus metrics (text exposition format)",
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


def page_routes() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return router


class MetricsMiddleware:
    """Counts requests and times them, labelled by route template (not the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = route_label(scope)
            HTTP_REQUESTS.labels(route=route, status=str(status)).inc()
            HTTP_LATENCY.labels(route=route).observe(perf_counter() - start)


def route_label(scope: Scope) -> str:
    """The matched route's template, e.g. ``/v1/users/{user_id}/recommendations`` (without
    the ``:id`` convertor, as in the OpenAPI document)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None)
    if isinstance(path, str):
        return path
    if str(scope.get("path", "")).startswith("/static/"):
        return "/static"
    return "unmatched"
