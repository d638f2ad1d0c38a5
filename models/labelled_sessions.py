"""Labelled listening sessions: the form every data set is read into, its fixed split, and the
session as the stream sees it.

A :class:`Session` is one listener's plays in order, each a :class:`LabelledPlay` (the track and
how it ended: the ranker's label). :func:`split_sessions` is the fixed, seeded session-level
split; :func:`session_events` turns a session into ``play-events`` messages with SYNTHESIZED
times (the data sets have none) and :func:`session_records` into what the stream derives from
those messages. :func:`fingerprint` identifies a set of sessions. The readers of each data source
are in :mod:`models.datasets`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from features.session import Outcome, SessionEvent
from nowplaying.events import MAX_ID_CHARS, PlayEvent, TrackEnd, TrackStart

#: Early skips end within this many milliseconds of the start (synthesized play times).
EARLY_SKIP_MS: Final = 30_000
#: 2026-11-28T00:00:00Z, the default start of synthesized timestamps.
DEFAULT_START_TS: Final = 1_795_824_000_000


@dataclass(frozen=True, slots=True)
class LabelledPlay:
    """One play of a data set's session: the track and how it ended (the ranker's label)."""

    track_id: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Session:
    """One listener's session from a data set: its plays, in play order."""

    session_id: str
    user_id: str
    plays: tuple[LabelledPlay, ...]


# --- split ------------------------------------------------------------------------------------


def split_sessions(
    sessions: Sequence[Session], seed: int = 7
) -> tuple[list[Session], list[Session], list[Session]]:
    """Fixed 80/10/10 session-level split (train, validation, test).

    Sessions are ordered by a seeded hash of their id, so the split depends only on the seed and
    the set of sessions (not on their order), and one session never straddles two parts.
    """
    ordered = sorted(sessions, key=lambda s: _split_key(seed, s.session_id))
    n = len(ordered)
    n_train, n_val = round(n * 0.8), round(n * 0.1)
    return ordered[:n_train], ordered[n_train : n_train + n_val], ordered[n_train + n_val :]


def _split_key(seed: int, session_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{session_id}".encode(), digest_size=8).digest()


# --- events -----------------------------------------------------------------------------------


def session_events(
    session: Session, start_ts: int = DEFAULT_START_TS, rng_seed: int = 0
) -> list[PlayEvent]:
    """The session as play events: a ``track_start`` then a ``track_end`` per play.

    Event ids are deterministic (``<session_id>-<i:03d>-s`` / ``-e``; a session id too long
    for that is replaced by a digest of it, see :func:`event_id_base`). Timestamps, durations,
    played time and ``reason_end`` are SYNTHESIZED (the data sets have none), consistently with
    the outcome: an early skip ends within 30 s with ``skipped=true``; a late skip after 30 s with
    ``skipped=false, reason_end="fwdbtn"``; a listened track at its end with
    ``reason_end="trackdone"``. The next track starts when the previous one ends.
    """
    events: list[PlayEvent] = []
    reason_start = "clickrow"
    common = {"user_id": session.user_id, "session_id": session.session_id}
    for i, (play, timing) in enumerate(
        zip(session.plays, _timings(session, start_ts, rng_seed), strict=True)
    ):
        base = event_id_base(session.session_id, i)
        events.append(
            TrackStart(
                event_type="track_start",
                event_id=f"{base}-s",
                track_id=play.track_id,
                ts=timing.start,
                reason_start=reason_start,
                **common,
            )
        )
        reason_end = "trackdone" if play.outcome == "listened" else "fwdbtn"
        events.append(
            TrackEnd(
                event_type="track_end",
                event_id=f"{base}-e",
                track_id=play.track_id,
                ts=timing.start + timing.played,
                skipped=play.outcome == "skip_early",
                played_ms=timing.played,
                duration_ms=timing.duration,
                reason_end=reason_end,
                **common,
            )
        )
        reason_start = reason_end
    return events


def event_id_base(session_id: str, index: int) -> str:
    """``<session_id>-<index:03d>``, the stem of the ids of a session's ``index``-th play; when
    that and a 2-character suffix would pass the id limit, the session id is replaced by a
    digest of it (32 hex digits), so every session's event ids stay valid and distinct."""
    base = f"{session_id}-{index:03d}"
    if len(base) + 2 <= MAX_ID_CHARS:
        return base
    digest = hashlib.blake2b(session_id.encode(), digest_size=16).hexdigest()
    return f"{digest}-{index:03d}"


def session_records(
    session: Session, start_ts: int = DEFAULT_START_TS, rng_seed: int = 0
) -> list[SessionEvent]:
    """What the stream derives from :func:`session_events` (``to_session_event`` of each),
    computed without building the messages: the fast path for training on many sessions."""
    records: list[SessionEvent] = []
    for play, timing in zip(session.plays, _timings(session, start_ts, rng_seed), strict=True):
        records.append(SessionEvent("start", play.track_id, timing.start, None))
        records.append(
            SessionEvent("end", play.track_id, timing.start + timing.played, play.outcome)
        )
    return records


@dataclass(frozen=True, slots=True)
class _Timing:
    start: int
    played: int
    duration: int


def _timings(session: Session, start_ts: int, rng_seed: int) -> list[_Timing]:
    """Synthesized, deterministic per session: durations 2-6 min, plays back to back."""
    rng = random.Random(f"{rng_seed}:{session.session_id}")
    timings = []
    ts = start_ts
    for play in session.plays:
        duration = rng.randint(120_000, 360_000)
        played = _played_ms(rng, play.outcome, duration)
        timings.append(_Timing(ts, played, duration))
        ts += played
    return timings


def _played_ms(rng: random.Random, outcome: Outcome, duration: int) -> int:
    if outcome == "skip_early":
        return rng.randint(2_000, EARLY_SKIP_MS - 1)
    if outcome == "skip_late":
        return rng.randint(EARLY_SKIP_MS, duration - 5_000)
    return duration


def fingerprint(sessions: Iterable[Session]) -> str:
    """A sha256 over the sessions' ids, tracks and outcomes, in order (identifies the data)."""
    h = hashlib.sha256()
    for s in sessions:
        h.update(f"{s.session_id}\x1f{s.user_id}\x1e".encode())
        for p in s.plays:
            h.update(f"{p.track_id}\x1f{p.outcome}\x1e".encode())
        h.update(b"\x1d")
    return h.hexdigest()
