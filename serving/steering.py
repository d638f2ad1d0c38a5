"""``POST /v1/sessions/{session_id}/steer``: a listener's intent, produced as a steer event.

The route validates the body (:data:`SteerRequest`: a known intent, a track for
``more_like_this`` / ``less_like_this`` and none for the others), builds the steer event and
validates it by the contract the worker applies (:class:`nowplaying.steer_events.SteerEvent`),
checks that the session is the listener's current
one (404 when the listener is unknown, 409 when another session is current), and produces the
steer event to ``play-events`` keyed by ``user_id`` (the partition of the listener's plays) through
a :class:`SteerProducer`; it answers 202 with the event id once Kafka acknowledged the record. The
worker then publishes the refreshed list at once. A client that retries a request should send the
same ``event_id``: the worker applies an event id once.

:class:`KafkaSteerProducer` is the production seam: an aiokafka producer with ``acks=all`` and
idempotence, created by the API's start-up hook, connected on the first steer (an API whose
broker is down still serves reads; a steer then answers 503 naming Kafka) and closed on shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Annotated, Any, Literal, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field

from features.store import FeatureReader
from nowplaying.clients import aiokafka_security_kwargs
from nowplaying.events import ID_PATTERN, MAX_ID_CHARS, Rejection
from nowplaying.settings import Settings
from nowplaying.steer_events import IntentKind, SteerEvent, parse_steer_event
from serving.errors import ApiError, not_found

log = logging.getLogger(__name__)


def _id_field(description: str, default: object | None = ...) -> Any:
    """A field holding an id of the contract (1-128 characters, no control characters)."""
    return Field(
        default, description=description, min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN
    )


class _SteerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = _id_field("The listener (the key of their play events).")
    event_id: str | None = _id_field(
        "Idempotency key: a retry with the same id is applied once. Default: a new id.", None
    )


class TrackSteerRequest(_SteerBody):
    """``more_like_this`` / ``less_like_this`` a track."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"user_id": "u-1001", "intent": "more_like_this", "track_id": "t-4711"}]
        }
    )

    intent: Literal["more_like_this", "less_like_this"]
    track_id: str = _id_field("The track to hear more, or less, like.")


class SessionSteerRequest(_SteerBody):
    """``discover``, ``familiar`` or ``reset``: no track."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user_id": "u-1001", "intent": "discover"}]}
    )

    intent: Literal["discover", "familiar", "reset"]


#: The body of a steer request (by ``intent``).
SteerRequest = Annotated[TrackSteerRequest | SessionSteerRequest, Field(discriminator="intent")]


class SteerAccepted(BaseModel):
    event_id: str = Field(description="The steer event's id: the refreshed list's trigger.")
    session_id: str
    intent: IntentKind
    ts: int = Field(description="Event time given to the steer, epoch milliseconds.")


class SteerUnavailableError(Exception):
    """Kafka did not take the steer event."""


class SteerProducer(Protocol):
    """Produces one steer event; returns once Kafka acknowledged it (or raises
    :class:`SteerUnavailableError`)."""

    async def send(self, event: SteerEvent) -> None: ...

    async def close(self) -> None: ...


class KafkaSteerProducer:
    """:class:`SteerProducer` on Kafka: aiokafka, ``acks=all``, idempotent, connected lazily."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                s = self._settings
                options: dict[str, Any] = {
                    "bootstrap_servers": s.kafka_servers,
                    "client_id": "nowplaying-api-steer",
                    "acks": "all",
                    "enable_idempotence": True,
                    "request_timeout_ms": 10000,
                    **aiokafka_security_kwargs(s),
                }
                producer = AIOKafkaProducer(**options)
                try:
                    await producer.start()
                except Exception:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send(self, event: SteerEvent) -> None:
        try:
            producer = await self._started()
            await producer.send_and_wait(
                self._settings.topic_play_events,
                event.model_dump_json(exclude_none=True).encode(),
                key=event.user_id.encode(),
            )
        except KafkaError as exc:
            log.warning("steer event %s not produced: %s", event.event_id, exc)
            raise SteerUnavailableError(type(exc).__name__) from exc

    async def close(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None


def steer_event(session_id: str, body: SteerRequest, now_ms: int | None = None) -> SteerEvent:
    """The steer event of a request, validated by the contract the worker applies (raises
    :class:`SteerRefusedError` with the error class and reason a dead letter would carry)."""
    raw = {
        "event_id": body.event_id or f"steer-{uuid.uuid4().hex}",
        "event_type": "steer",
        "user_id": body.user_id,
        "session_id": session_id,
        "ts": now_ms if now_ms is not None else int(time.time() * 1000),
        "intent": body.intent,
        **({"track_id": body.track_id} if isinstance(body, TrackSteerRequest) else {}),
    }
    parsed = parse_steer_event(json.dumps(raw).encode())
    if isinstance(parsed, Rejection):
        raise SteerRefusedError(parsed.error_class, parsed.reason)
    return parsed


class SteerRefusedError(ValueError):
    """A steer request the contract refuses: ``error_class`` and ``reason`` as a dead letter
    would say."""

    def __init__(self, error_class: str, reason: str) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason


async def accept_steer(
    session_id: str, body: SteerRequest, reader: FeatureReader, producer: SteerProducer
) -> SteerAccepted:
    """The route's work: validate, check the session is the listener's current one, produce."""
    try:
        event = steer_event(session_id, body)
    except SteerRefusedError as refused:
        details = {"session_id": session_id}
        raise ApiError(422, refused.error_class, refused.reason, details) from None
    current = await reader.user_session(body.user_id)
    if current is None:
        raise not_found(f"no session known for user '{body.user_id}'", user_id=body.user_id)
    if current != session_id:
        raise ApiError(
            409,
            "not_current_session",
            f"session '{session_id}' is not the current session of user '{body.user_id}'",
            {"session_id": session_id, "user_id": body.user_id},
        )
    try:
        await producer.send(event)
    except SteerUnavailableError as exc:
        raise ApiError(
            503,
            "dependency_unavailable",
            "Kafka is unavailable",
            {"dependency": "kafka", "reason": str(exc)},
        ) from None
    return SteerAccepted(
        event_id=event.event_id, session_id=session_id, intent=event.intent, ts=event.ts
    )
