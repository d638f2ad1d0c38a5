"""Play events and raw batches for the pipeline's unit tests (with :mod:`tests.support.fakes`)."""

from __future__ import annotations

from collections.abc import Sequence

from nowplaying.events import PlayEvent, TrackEnd, TrackStart
from nowplaying.settings import Settings
from streams.pipeline import RawMessage

#: The pipeline's clock in these tests (epoch seconds).
NOW_S = 1_795_900_000.0
TOPIC = "play-events"


def pipeline_settings() -> Settings:
    return Settings(top_k=5, retry_initial_seconds=0.1, retry_max_seconds=0.3)


def start(i: int, track: str, session: str = "s1", user: str = "u1") -> TrackStart:
    return TrackStart(
        event_type="track_start",
        event_id=f"{session}-{i}-s",
        user_id=user,
        session_id=session,
        track_id=track,
        ts=1_795_800_000_000 + i * 1000,
    )


def end(i: int, track: str, skipped: bool, session: str = "s1", user: str = "u1") -> TrackEnd:
    return TrackEnd(
        event_type="track_end",
        event_id=f"{session}-{i}-e",
        user_id=user,
        session_id=session,
        track_id=track,
        ts=1_795_800_000_500 + i * 1000,
        skipped=skipped,
    )


def raw(values: Sequence[bytes | PlayEvent], first_offset: int = 0) -> list[RawMessage]:
    out = []
    for i, v in enumerate(values):
        value = v if isinstance(v, bytes) else v.model_dump_json().encode()
        out.append(RawMessage(value, b"u1", TOPIC, 0, first_offset + i, 1_795_800_000_000))
    return out
