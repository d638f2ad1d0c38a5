"""The HTTP API and the live Now Playing page.

:func:`create_app` builds the FastAPI app. Its lifespan creates the Redis client (unless one is
injected, as tests do) and closes it on shutdown. Routes read what the stream worker wrote to
Redis; they never talk to the model, and to Kafka only to produce steer events
(:mod:`serving.steering`). Who may call which route is decided by
:class:`serving.auth.Auth`, built from the settings here (bad access settings fail here).
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations of routes and
# dependencies at run time, and some name dependencies built in a function (auth.needs).
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.convertors import Convertor, register_url_convertor

from features.store import FeatureReader, RedisFeatureReader
from models.registry import registry_status
from nowplaying.clients import AsyncRedisClient, async_redis_client
from nowplaying.events import ID_PATTERN, MAX_ID_CHARS, RecommendationMessage
from nowplaying.keys import Keys
from nowplaying.readiness import Readiness, redis_status
from nowplaying.settings import Settings
from serving.auth import Auth
from serving.errors import (
    error_responses,
    install_error_handlers,
    not_found,
)
from serving.middleware import MetricsMiddleware
from serving.queries import NowPlaying, read_now_playing
from serving.steering import (
    KafkaSteerProducer,
    SteerAccepted,
    SteerProducer,
    SteerRequest,
    accept_steer,
)
from serving.tokens import Caller

log = logging.getLogger(__name__)

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


class StreamTokenGrant(BaseModel):
    token: str = Field(description="Pass as ?stream_token= to the live stream; nowhere else.")
    expires_at: int = Field(description="Epoch seconds; open the stream before then.")
    expires_in: int = Field(description="Seconds from now.")


def get_redis(request: Request) -> AsyncRedisClient:
    client: AsyncRedisClient = request.app.state.redis
    return client


def get_reader(request: Request) -> FeatureReader:
    reader: FeatureReader = request.app.state.reader
    return reader


def get_steer_producer(request: Request) -> SteerProducer:
    producer: SteerProducer = request.app.state.steer_producer
    return producer


RedisDep = Annotated[AsyncRedisClient, Depends(get_redis)]
ReaderDep = Annotated[FeatureReader, Depends(get_reader)]
SteerDep = Annotated[SteerProducer, Depends(get_steer_producer)]


def create_app(
    settings: Settings,
    redis: AsyncRedisClient | None = None,
    steer_producer: SteerProducer | None = None,
) -> FastAPI:
    """The API. ``redis``: an injected client (the caller closes it); default, one from settings.
    Routes read through a :class:`features.store.FeatureReader` on that client; /readyz pings it.
    ``steer_producer``: where steer events go (default: Kafka, :mod:`serving.steering`).

    Raises :class:`serving.auth.AuthConfigError` when the access settings are unusable.
    """
    auth = Auth(settings)
    if auth.open:
        log.warning(
            "NP_API_AUTH=off: the API is OPEN, no token is checked; anyone who can reach "
            "http://%s:%d/ reads every listener's session features and lists%s",
            settings.api_host,
            settings.api_port,
            " (a non-loopback interface, allowed by NP_API_AUTH_OFF_ALLOW_PUBLIC)"
            if settings.api_auth_off_allow_public
            else "",
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis if redis is not None else async_redis_client(settings)
        app.state.redis = client
        app.state.reader = RedisFeatureReader(client, Keys(settings.redis_key_prefix))
        producer = steer_producer or KafkaSteerProducer(settings)
        app.state.steer_producer = producer
        try:
            yield
        finally:
            if steer_producer is None:
                await producer.close()
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
    app.include_router(api_routes(settings, auth))
    app.include_router(ops_routes(settings, auth))
    app.include_router(page_routes())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def api_routes(settings: Settings, auth: Auth) -> APIRouter:
    auth_errors = () if auth.open else (401, 403)
    router = APIRouter(prefix="/v1", responses=error_responses(*auth_errors, 422, 503))
    read = [auth.needs("read")]

    @router.get(
        "/users/{user_id:id}/recommendations",
        response_model=RecommendationMessage,
        responses=error_responses(404),
        dependencies=read,
        summary="The listener's latest Now Playing list",
    )
    async def user_recommendations(user_id: UserId, reader: ReaderDep) -> RecommendationMessage:
        latest = await reader.latest_recommendations(user_id)
        if latest is None:
            raise not_found(f"no recommendations for user '{user_id}'", user_id=user_id)
        return latest

    @router.get(
        "/sessions/{session_id:id}/features",
        response_model=SessionFeatures,
        responses=error_responses(404),
        dependencies=read,
        summary="The session's current features, by name",
    )
    async def session_features_of(session_id: SessionId, reader: ReaderDep) -> SessionFeatures:
        features = await reader.session_features(session_id)
        if features is None:
            raise not_found(f"no features for session '{session_id}'", session_id=session_id)
        return SessionFeatures(session_id=session_id, features=features)

    @router.get(
        "/users/{user_id:id}/now-playing",
        response_model=NowPlaying,
        responses=error_responses(404),
        dependencies=read,
        summary="The track now playing, recent plays and the latest list",
    )
    async def user_now_playing(user_id: UserId, reader: ReaderDep) -> NowPlaying:
        view = await read_now_playing(reader, user_id)
        if view.session_id is None and view.recommendations is None:
            raise not_found(f"nothing known about user '{user_id}'", user_id=user_id)
        return view

    @router.get(
        "/users/{user_id:id}/live",
        response_class=EventSourceResponse,
        dependencies=[auth.needs_stream("read")],
        summary="Server-sent 'snapshot' events (a NowPlaying JSON) whenever the view changes",
        description="Takes a read bearer token, or (for browsers' EventSource, which cannot "
        "send headers) a stream token from POST /v1/stream-tokens as ?stream_token=.",
    )
    async def user_live(user_id: UserId, reader: ReaderDep) -> AsyncIterator[ServerSentEvent]:
        async for event in live_events(reader, user_id, settings.api_live_poll_seconds):
            yield event

    @router.get(
        "/users",
        response_model=ActiveUsers,
        dependencies=read,
        summary="Recently active listeners",
    )
    async def active_users(
        reader: ReaderDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> ActiveUsers:
        return ActiveUsers(users=await reader.active_users(limit))

    @router.post(
        "/stream-tokens",
        response_model=StreamTokenGrant,
        summary="A short-lived token for the live stream's URL",
        description="Signed, bound to the calling token's name and the read scope, valid "
        f"{settings.api_stream_token_seconds} s, accepted by GET /v1/users/{{user_id}}/live "
        "only.",
    )
    async def stream_token(
        caller: Annotated[Caller, auth.needs("read")], response: Response
    ) -> StreamTokenGrant:
        issued = auth.stream_tokens.issue(caller, "read")
        response.headers["Cache-Control"] = "no-store"
        return StreamTokenGrant(
            token=issued.token,
            expires_at=issued.expires_at,
            expires_in=auth.stream_tokens.lifetime_seconds,
        )

    @router.post(
        "/sessions/{session_id:id}/steer",
        status_code=202,
        response_model=SteerAccepted,
        responses=error_responses(400, 404, 409, 429),  # 400: a body that is not JSON
        dependencies=[auth.steer_limited()],
        summary="Steer the listener's current session with an intent",
        description="more_like_this / less_like_this (with a track_id), discover, familiar or "
        "reset. Produces a steer event to Kafka; the worker publishes the refreshed list at "
        "once (its `steering` names the intents). 202 with the event id once Kafka has it.",
    )
    async def steer_session(
        session_id: SessionId, body: SteerRequest, reader: ReaderDep, producer: SteerDep
    ) -> SteerAccepted:
        return await accept_steer(session_id, body, reader, producer)

    return router


async def live_events(
    reader: FeatureReader, user_id: str, poll_seconds: float
) -> AsyncIterator[ServerSentEvent]:
    """A 'snapshot' event first, then one each time the listener's view changes.

    Redis failures become 'error' events; the stream keeps polling and recovers by itself.
    """
    yield ServerSentEvent(comment="live", retry=2000)
    last: str | None = None
    while True:
        try:
            payload = (await read_now_playing(reader, user_id)).model_dump_json()
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


def ops_routes(settings: Settings, auth: Auth) -> APIRouter:
    router = APIRouter(tags=["operations"])
    probe = auth.probe_dependencies()
    probe_errors = () if auth.probes_open or auth.open else (401, 403)

    @router.get("/healthz", response_model=Health, summary="The process is up")
    async def healthz() -> Health:
        return Health()

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={
            **error_responses(*probe_errors),
            503: {"model": Readiness, "description": "Not ready: `failing` names why"},
        },
        dependencies=probe,
        summary="Redis reachable and a model version resolvable (503 otherwise)",
    )
    async def readyz(redis: RedisDep) -> JSONResponse:
        readiness = await check_readiness(redis, settings)
        return JSONResponse(readiness.model_dump(mode="json"), status_code=readiness.status_code)

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Prometheus metrics (text exposition format)",
        responses={200: {"content": {"text/plain": {}}}, **error_responses(*probe_errors)},
        dependencies=probe,
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


async def check_readiness(redis: AsyncRedisClient, settings: Settings) -> Readiness:
    """The API's dependencies: Redis answers PING, and the registry resolves a model version
    (the API does not load the model: the version is the one the worker serves)."""
    redis_ok = await redis_status(redis)
    version, model_ok = await asyncio.to_thread(
        registry_status, settings.model_dir, settings.model_version
    )
    return Readiness.of({"redis": redis_ok, "model": model_ok}, model_version=version)


def page_routes() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return router
