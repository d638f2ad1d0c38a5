"""Data sets of listening sessions: loaders for the real data, the project's own event logs, and
a SYNTHETIC generator, each read into :class:`models.labelled_sessions.Session`; which one to use
(:func:`load_sessions`); and the writer of the project's event-log format.

Data sources
------------
* **MSSD-derived sessions** (``mini-spotify-data.csv``, 10,000 real Spotify sessions). The file's
  graded ``skipped`` level 0-4 is not documented; this project INFERS the mapping
  0-1 = skipped early, 2 = skipped late, 3-4 = listened through (see the data set's README). The
  file has no timestamps: :func:`models.labelled_sessions.session_events` synthesizes them.
* **Play-event logs**: JSON lines of ``play-events`` messages (:mod:`nowplaying.events`), so users
  can train on their own logs. A play is a ``track_end`` event; its outcome is
  :func:`features.session.outcome_of`.
* **SYNTHETIC sessions** (:func:`synthetic_sessions`): generated, not real listening data; they
  exist so that training and the demo work on a fresh clone without the data set.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import numpy as np

from features.session import Outcome, outcome_of
from models.labelled_sessions import LabelledPlay, Session, session_events
from nowplaying.events import Rejection, TrackEnd, parse_play_event
from nowplaying.settings import Settings

#: Inferred mapping of the MSSD-derived file's graded skip level (NOT documented by the source).
MSSD_LEVEL_OUTCOME: Final[dict[int, Outcome]] = {
    0: "skip_early",
    1: "skip_early",
    2: "skip_late",
    3: "listened",
    4: "listened",
}
MSSD_FILE: Final = Path("mssd-derived-sessions") / "mini-spotify-data.csv"


class DataError(ValueError):
    """The data set is missing or malformed; the message says what and where."""


# --- MSSD-derived sessions ------------------------------------------------------------------


def load_mssd(path: Path, limit: int | None = None) -> list[Session]:
    """The MSSD-derived sessions in file order (at most ``limit``).

    Ids: session ``mssd-s<n>``, user ``mssd-u<n>`` (the file's ``user_id`` is a session index, so
    each session is its own listener), track ``mssd-t<song_id>``. Skip levels map by
    :data:`MSSD_LEVEL_OUTCOME` (inferred).
    """
    sessions: list[Session] = []
    current: str | None = None
    plays: list[LabelledPlay] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:4]] != [
            "user_id",
            "song_id",
            "previous_song",
            "skipped",
        ]:
            raise DataError(f"{path}: expected the header user_id,song_id,previous_song,skipped")
        for line_no, row in enumerate(reader, start=2):
            session_key, play = _mssd_play(row, path, line_no)
            if session_key != current:
                if current is not None:
                    sessions.append(_mssd_session(current, plays))
                    if limit is not None and len(sessions) >= limit:
                        return sessions
                current, plays = session_key, []
            plays.append(play)
    if current is not None and (limit is None or len(sessions) < limit):
        sessions.append(_mssd_session(current, plays))
    return sessions


def _mssd_play(row: list[str], path: Path, line_no: int) -> tuple[str, LabelledPlay]:
    try:
        session_key, song, level = row[0].strip(), int(row[1]), int(row[3])
        outcome = MSSD_LEVEL_OUTCOME[level]
    except (IndexError, ValueError, KeyError) as exc:
        raise DataError(f"{path}:{line_no}: malformed row {row!r} ({exc})") from exc
    return session_key, LabelledPlay(f"mssd-t{song}", outcome)


def _mssd_session(key: str, plays: list[LabelledPlay]) -> Session:
    return Session(f"mssd-s{key}", f"mssd-u{key}", tuple(plays))


# --- the project's own event format -----------------------------------------------------------


def load_play_events_jsonl(path: Path) -> list[Session]:
    """Sessions from JSON lines of ``play-events`` messages (a file, or a folder of ``*.jsonl``).

    Invalid lines and repeated event ids are skipped. Within a session, events are taken in
    timestamp order (file order among equal timestamps); each ``track_end`` is one play. Sessions
    come in the order of their first event.
    """
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no *.jsonl files")
    ends: dict[str, list[tuple[int, int, TrackEnd]]] = {}
    users: dict[str, str] = {}
    seen: set[str] = set()
    order = 0
    for file in files:
        with file.open("rb") as fh:
            for raw in fh:
                event = parse_play_event(raw.strip(), max_bytes=1 << 20)
                if isinstance(event, Rejection) or event.event_id in seen:
                    continue
                seen.add(event.event_id)
                users.setdefault(event.session_id, event.user_id)
                bucket = ends.setdefault(event.session_id, [])
                if isinstance(event, TrackEnd):
                    bucket.append((event.ts, order, event))
                order += 1
    sessions = []
    for session_id, items in ends.items():
        plays = tuple(LabelledPlay(e.track_id, outcome_of(e)) for _, _, e in sorted(items))
        if plays:
            sessions.append(Session(session_id, users[session_id], plays))
    return sessions


def write_play_events_jsonl(sessions: Iterable[Session], path: Path, start_ts: int) -> int:
    """Write the sessions' events as JSON lines (the format :func:`load_play_events_jsonl` reads).

    Sessions follow one another in time. Returns the number of events written.
    """
    count = 0
    ts = start_ts
    with path.open("w", encoding="utf-8") as fh:
        for session in sessions:
            events = session_events(session, ts)
            for event in events:
                fh.write(json.dumps(event.model_dump(mode="json", exclude_none=True)) + "\n")
            count += len(events)
            ts = events[-1].ts + 60_000 if events else ts
    return count


# --- SYNTHETIC sessions -----------------------------------------------------------------------

_SYN_GENRES: Final = 12
_SYN_TRACKS_PER_GENRE: Final = 50
_SYN_PLAYLISTS: Final = 60
_SYN_PLAYLIST_LEN: Final = 30


def synthetic_sessions(n: int, seed: int = 7) -> list[Session]:
    """SYNTHETIC listening sessions (generated, NOT real data), for fresh clones and demos.

    600 tracks in 12 genres; 60 ordered playlists drawn mostly from one genre each; a session
    follows one playlist (sometimes jumping within the genre or to a random track) for 10-20
    plays. Each session has a taste genre; on-taste and better tracks are skipped less, and the
    skip probability rises after consecutive skips. Ids: ``syn-s<n>``, ``syn-u<n>``, ``syn-t<n>``.
    """
    rng = np.random.default_rng(seed)
    n_tracks = _SYN_GENRES * _SYN_TRACKS_PER_GENRE
    genre_of = np.repeat(np.arange(_SYN_GENRES), _SYN_TRACKS_PER_GENRE)
    quality = rng.normal(0.0, 0.8, n_tracks)
    playlists = [_synthetic_playlist(rng, genre_of) for _ in range(_SYN_PLAYLISTS)]
    playlist_weights = 1.0 / np.arange(1, _SYN_PLAYLISTS + 1) ** 0.8
    playlist_weights /= playlist_weights.sum()
    sessions = []
    for i in range(n):
        playlist = playlists[int(rng.choice(_SYN_PLAYLISTS, p=playlist_weights))]
        taste = int(genre_of[playlist[0]]) if rng.random() < 0.7 else int(rng.integers(0, 12))
        plays = _synthetic_plays(rng, playlist, taste, genre_of, quality)
        sessions.append(Session(f"syn-s{i + 1}", f"syn-u{i + 1}", plays))
    return sessions


def _synthetic_playlist(rng: np.random.Generator, genre_of: np.ndarray) -> list[int]:
    genre = int(rng.integers(0, _SYN_GENRES))
    own = np.flatnonzero(genre_of == genre)
    other = np.flatnonzero(genre_of != genre)
    n_own = int(_SYN_PLAYLIST_LEN * 0.8)
    tracks = np.concatenate(
        [
            rng.choice(own, n_own, replace=False),
            rng.choice(other, _SYN_PLAYLIST_LEN - n_own, replace=False),
        ]
    )
    rng.shuffle(tracks)
    # Keep the playlist's first track in its genre, so the genre is well defined.
    first_own = int(np.flatnonzero(genre_of[tracks] == genre)[0])
    tracks[[0, first_own]] = tracks[[first_own, 0]]
    return [int(t) for t in tracks]


def _synthetic_plays(
    rng: np.random.Generator,
    playlist: list[int],
    taste: int,
    genre_of: np.ndarray,
    quality: np.ndarray,
) -> tuple[LabelledPlay, ...]:
    length = int(rng.integers(10, 21))
    pos = int(rng.integers(0, len(playlist) // 2))
    track = playlist[pos]
    plays: list[LabelledPlay] = []
    played: set[int] = set()
    consecutive_skips = 0
    for _ in range(length):
        played.add(track)
        logit = 0.3 + 1.2 * (genre_of[track] == taste) + quality[track] - 0.4 * consecutive_skips
        p_listen = 1.0 / (1.0 + np.exp(-logit))
        u = rng.random()
        outcome: Outcome
        if u < p_listen:
            outcome, consecutive_skips = "listened", 0
        else:
            late = rng.random() < 0.3
            outcome, consecutive_skips = (
                ("skip_late" if late else "skip_early"),
                (consecutive_skips + 1),
            )
        plays.append(LabelledPlay(f"syn-t{track + 1}", outcome))
        track, pos = _synthetic_next(rng, playlist, pos, track, genre_of=genre_of, played=played)
    return tuple(plays)


def _synthetic_next(
    rng: np.random.Generator,
    playlist: list[int],
    pos: int,
    track: int,
    *,
    genre_of: np.ndarray,
    played: set[int],
) -> tuple[int, int]:
    u = rng.random()
    if u < 0.8 and pos + 1 < len(playlist):
        return playlist[pos + 1], pos + 1
    if u < 0.95:
        same = np.flatnonzero(genre_of == genre_of[track])
        choices = [int(t) for t in same if int(t) not in played] or [int(t) for t in same]
        return choices[int(rng.integers(0, len(choices)))], pos
    return int(rng.integers(0, len(genre_of))), pos


# --- resolving the data source ----------------------------------------------------------------


def load_sessions(
    settings: Settings, data: Path | None, synthetic: bool, limit: int | None
) -> tuple[list[Session], str]:
    """The sessions to use and a human description of where they come from.

    ``synthetic`` wins; otherwise ``data`` (a ``.csv`` MSSD-derived file, a ``.jsonl`` event log,
    or a folder holding either) or, by default, the MSSD-derived file under
    ``settings.data_dir``. Raises :class:`DataError` with a hint when nothing is found.
    """
    if synthetic:
        n = limit if limit is not None else 2000
        return synthetic_sessions(n), (
            f"SYNTHETIC: {n} generated sessions (seed 7), not real listening data"
        )
    path = _resolve_data_path(settings, data)
    if path.suffix == ".csv":
        sessions = load_mssd(path, limit)
        kind = "MSSD-derived Spotify sessions; skip levels mapped by an INFERRED encoding"
    else:
        sessions = load_play_events_jsonl(path)[:limit]
        kind = "play-event log"
    if not sessions:
        raise DataError(f"{path}: no sessions")
    plays = sum(len(s.plays) for s in sessions)
    return sessions, f"real: {kind} ({len(sessions)} sessions, {plays} plays) from {path}"


def _resolve_data_path(settings: Settings, data: Path | None) -> Path:
    path = data if data is not None else settings.data_dir / MSSD_FILE
    if path.is_dir():
        mssd = path / MSSD_FILE
        direct = path / MSSD_FILE.name
        path = mssd if mssd.exists() else direct if direct.exists() else path
    if not path.exists():
        raise DataError(
            f"data not found at {path}; pass --data PATH (set NP_DATA_DIR) "
            "or use --synthetic for generated sessions"
        )
    return path
