"""The replayed workload: real sessions as play events, interleaved, serialized once up front.

Sessions come from ``models.datasets.load_sessions`` (the MSSD-derived Spotify sessions under
``NP_DATA_DIR``, or the clearly labelled SYNTHETIC generator when the data is absent). Each run
step gets its own id suffix, so no step's events are deduplicated against an earlier step's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from models.datasets import DataError, load_sessions
from models.labelled_sessions import Session, session_events
from nowplaying.settings import Settings
from streams.replay import interleave


@dataclass(frozen=True, slots=True)
class Prepared:
    """One play event, ready to send."""

    event_id: str
    key: bytes
    value: bytes
    is_start: bool


@dataclass(frozen=True)
class Workload:
    events: list[Prepared]
    source: str

    @property
    def starts(self) -> int:
        return sum(e.is_start for e in self.events)

    @property
    def events_per_start(self) -> float:
        return len(self.events) / self.starts if self.starts else float("nan")


def bench_sessions(settings: Settings, limit: int | None) -> tuple[list[Session], str]:
    """Real sessions when the data is present, SYNTHETIC ones otherwise (said in the source)."""
    try:
        return load_sessions(settings, None, synthetic=False, limit=limit)
    except DataError:
        return load_sessions(settings, None, synthetic=True, limit=limit)


def prepare_session(session: Session, tag: str, start_ts: int) -> list[Prepared]:
    out: list[Prepared] = []
    for ev in session_events(session, start_ts=start_ts):
        data = ev.model_dump(mode="json", exclude_none=True)
        data["event_id"] = f"{data['event_id']}.{tag}"
        data["session_id"] = f"{data['session_id']}.{tag}"
        data["user_id"] = f"{data['user_id']}.{tag}"
        out.append(
            Prepared(
                event_id=data["event_id"],
                key=data["user_id"].encode(),
                value=json.dumps(data, separators=(",", ":")).encode(),
                is_start=data["event_type"] == "track_start",
            )
        )
    return out


def build_workload(
    sessions: Sequence[Session], n_events: int, tag: str, concurrent: int = 200, offset: int = 0
) -> list[Prepared]:
    """``n_events`` events from the sessions starting at ``offset`` (wrapping around), tagged."""
    start_ts = time.time_ns() // 1_000_000
    chosen: list[list[Prepared]] = []
    total = 0
    i = offset
    while total < n_events and sessions:
        session = sessions[i % len(sessions)]
        prepared = prepare_session(session, f"{tag}{i // len(sessions)}", start_ts)
        chosen.append(prepared)
        total += len(prepared)
        i += 1
    # Listeners are not synchronised: a random active session plays next (seeded, the same
    # order every run). Round-robin would run in lockstep: all sessions start a track, then all
    # end one, so the worker saw alternating seconds of track starts only and ends only.
    events = list(interleave(chosen, concurrent, seed=offset))
    return events[:n_events]
