"""What the API and the live page show, read from the Redis feature store.

Built on :class:`features.store.FeatureReader` (what the worker's writes left). The live page's
view of a listener, :class:`NowPlaying`, combines the latest recommendation list, the session's
recent plays (with skips marked) and the session's named features.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from pydantic import BaseModel, Field

from features.session import Outcome, SessionEvent
from features.store import FeatureReader
from nowplaying.events import RecommendationMessage

#: How many session events the live page looks at (a play is a start and an end).
RECENT_EVENTS = 60


class Play(BaseModel):
    """One track of the session: when it started, and how it ended (None while it plays)."""

    track_id: str
    started_at: int | None = Field(None, description="Epoch ms of the track_start, if seen.")
    ended_at: int | None = Field(None, description="Epoch ms of the track_end, if any.")
    outcome: Outcome | None = Field(
        None, description="skip_early, skip_late or listened; None while the track plays."
    )


class NowPlaying(BaseModel):
    """A listener's live view: the track now playing, recent plays and the latest list."""

    user_id: str
    session_id: str | None = Field(None, description="The listener's most recent session.")
    now_playing: Play | None = None
    recent_plays: list[Play] = Field(
        default_factory=list, description="The session's plays, newest first."
    )
    features: dict[str, object] | None = None
    recommendations: RecommendationMessage | None = None


def plays_of(events: Iterable[SessionEvent]) -> list[Play]:
    """Pair each track_end with the track_start it closes; oldest first."""
    plays: list[Play] = []
    for ev in events:
        if ev.kind == "steer":  # not a play (the features show the active intents)
            continue
        if ev.kind == "start":
            plays.append(Play(track_id=ev.track_id, started_at=ev.ts))
            continue
        open_play = _last_open_play(plays, ev.track_id)
        if open_play is None:
            plays.append(Play(track_id=ev.track_id, ended_at=ev.ts, outcome=ev.outcome))
        else:
            plays[open_play] = plays[open_play].model_copy(
                update={"ended_at": ev.ts, "outcome": ev.outcome}
            )
    return plays


def _last_open_play(plays: list[Play], track_id: str) -> int | None:
    for i in range(len(plays) - 1, -1, -1):
        if plays[i].track_id == track_id and plays[i].outcome is None:
            return i
    return None


def now_playing_of(plays: list[Play]) -> Play | None:
    """The last started track, while it has not ended."""
    if plays and plays[-1].outcome is None and plays[-1].started_at is not None:
        return plays[-1]
    return None


async def read_now_playing(reader: FeatureReader, user_id: str) -> NowPlaying:
    latest, session_id = await asyncio.gather(
        reader.latest_recommendations(user_id), reader.user_session(user_id)
    )
    if session_id is None and latest is not None:
        session_id = latest.session_id
    if session_id is None:
        return NowPlaying(user_id=user_id, recommendations=latest)
    events, features = await asyncio.gather(
        reader.session_events(session_id, last=RECENT_EVENTS),
        reader.session_features(session_id),
    )
    plays = plays_of(events)
    return NowPlaying(
        user_id=user_id,
        session_id=session_id,
        now_playing=now_playing_of(plays),
        recent_plays=plays[::-1],
        features=features,
        recommendations=latest,
    )
