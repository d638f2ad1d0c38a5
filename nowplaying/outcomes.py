"""The ``now-playing-outcomes`` contract: what followed each published list (an exposure).

One :class:`OutcomeMessage` per exposure that the session followed with a play: the list shown
(its ``exposure_id`` is the list's trigger event id), the next track the listener started, whether
that track was in the list and at which rank, and how its play ended. Messages are deterministic
(every field comes from the events and the stored list), so a redelivery republishes the same
bytes; readers dedupe by ``exposure_id`` (also the message key).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from nowplaying.events import SCHEMA_VERSION, Identifier, TimestampMs

#: How an attributed play ended: the three outcomes of a ``track_end``, or ``no_end`` (the
#: session's next ``track_start`` came before an end of the attributed track).
PlayOutcome = Literal["listened", "skip_late", "skip_early", "no_end"]
PLAY_OUTCOMES: Final[tuple[PlayOutcome, ...]] = ("listened", "skip_late", "skip_early", "no_end")


class OutcomeMessage(BaseModel):
    """What followed one exposure (one message per exposure with a next play)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "exposure_id": "e-5f2c1a",
                    "user_id": "u-1001",
                    "session_id": "s-1001-0001",
                    "variant": "treatment",
                    "model_version": "20261128T210400Z-3f9a2c",
                    "list_length": 10,
                    "list_generated_at": 1764355200004,
                    "exposure_latency_ms": 4,
                    "next_event_id": "e-5f2c1c",
                    "next_track_id": "t-815",
                    "next_started_at": 1764355231500,
                    "hit": True,
                    "rank": 1,
                    "outcome": "listened",
                    "ended_at": 1764355410000,
                }
            ]
        },
    )

    schema_version: Literal[1] = SCHEMA_VERSION
    exposure_id: Identifier = Field(description="The list's trigger_event_id (the dedupe key).")
    user_id: Identifier
    session_id: Identifier
    variant: str | None = Field(description="The A/B test variant that served the list.")
    model_version: str = Field(description="The model version that ranked the list.")
    list_length: int = Field(ge=0)
    list_generated_at: int = Field(ge=0, description="The list's generated_at (epoch ms).")
    exposure_latency_ms: int | None = Field(
        None,
        description="generated_at minus the trigger event's Kafka timestamp (event to list), "
        "when the record had one.",
    )
    next_event_id: Identifier = Field(description="The session's next track_start.")
    next_track_id: Identifier
    next_started_at: TimestampMs
    hit: bool = Field(description="The next track was in the list.")
    rank: int | None = Field(None, ge=1, description="Its rank in the list (1 = top), if a hit.")
    outcome: PlayOutcome
    ended_at: TimestampMs | None = Field(None, description="ts of the next track's track_end.")
