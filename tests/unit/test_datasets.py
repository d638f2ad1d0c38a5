from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.session import outcome_of
from models.datasets import (
    DataError,
    load_mssd,
    load_play_events_jsonl,
    load_sessions,
    synthetic_sessions,
    write_play_events_jsonl,
)
from models.labelled_sessions import (
    LabelledPlay,
    Session,
    fingerprint,
    session_events,
    split_sessions,
)
from nowplaying.events import TrackEnd, TrackStart, parse_play_event
from nowplaying.settings import Settings

REAL_MSSD = Path("../shared/data/mssd-derived-sessions/mini-spotify-data.csv")

CSV = """"user_id","song_id","previous_song","skipped"
1,10,-1,0
1,11,10,1
1,12,11,2
1,13,12,3
1,14,13,4
2,10,-1,4
2,15,10,0
3,16,-1,2
"""


def write_csv(tmp_path: Path, text: str = CSV) -> Path:
    path = tmp_path / "mini.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_mssd_groups_rows_and_maps_levels_by_the_inferred_encoding(tmp_path: Path) -> None:
    sessions = load_mssd(write_csv(tmp_path))
    assert [s.session_id for s in sessions] == ["mssd-s1", "mssd-s2", "mssd-s3"]
    assert sessions[0].user_id == "mssd-u1"
    assert [p.outcome for p in sessions[0].plays] == [
        "skip_early",
        "skip_early",
        "skip_late",
        "listened",
        "listened",
    ]
    assert [p.track_id for p in sessions[1].plays] == ["mssd-t10", "mssd-t15"]


def test_load_mssd_limit_stops_after_that_many_sessions(tmp_path: Path) -> None:
    sessions = load_mssd(write_csv(tmp_path), limit=2)
    assert [len(s.plays) for s in sessions] == [5, 2]


@pytest.mark.parametrize(
    "text",
    [
        '"a","b"\n1,2\n',
        '"user_id","song_id","previous_song","skipped"\n1,10,-1,7\n',
        '"user_id","song_id","previous_song","skipped"\n1,x,-1,0\n',
    ],
)
def test_load_mssd_rejects_malformed_files_with_a_data_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError):
        load_mssd(write_csv(tmp_path, text))


@pytest.mark.skipif(not REAL_MSSD.exists(), reason="real data set not present")
def test_real_mssd_file_has_the_documented_shape() -> None:
    sessions = load_mssd(REAL_MSSD)
    assert len(sessions) == 10_000
    assert sum(len(s.plays) for s in sessions) == 193_693
    assert len({p.track_id for s in sessions for p in s.plays}) == 5_792
    assert all(15 <= len(s.plays) <= 20 for s in sessions)


def test_session_events_are_valid_contract_events_consistent_with_outcomes() -> None:
    session = Session(
        "s-1",
        "u-1",
        (
            LabelledPlay("t-1", "listened"),
            LabelledPlay("t-2", "skip_early"),
            LabelledPlay("t-3", "skip_late"),
        ),
    )
    events = session_events(session, start_ts=1_795_824_000_000)
    assert [e.event_id for e in events] == [
        "s-1-000-s",
        "s-1-000-e",
        "s-1-001-s",
        "s-1-001-e",
        "s-1-002-s",
        "s-1-002-e",
    ]
    assert [type(e) for e in events] == [TrackStart, TrackEnd] * 3
    ends = [e for e in events if isinstance(e, TrackEnd)]
    assert [outcome_of(e) for e in ends] == ["listened", "skip_early", "skip_late"]
    assert [e.reason_end for e in ends] == ["trackdone", "fwdbtn", "fwdbtn"]
    assert ends[0].played_ms == ends[0].duration_ms
    assert ends[1].played_ms is not None and ends[1].played_ms < 30_000
    assert ends[2].played_ms is not None and ends[2].played_ms >= 30_000
    timestamps = [e.ts for e in events]
    assert timestamps == sorted(timestamps)
    for event in events:  # each one survives the wire format
        assert parse_play_event(event.model_dump_json().encode()) == event


@pytest.mark.parametrize(
    "session_id",
    ["x" * 120 + "12345678", "ユ" * 128, "s" * 122, "s" * 123],
    ids=["128-ascii", "128-katakana", "longest-kept", "first-digested"],
)
def test_event_ids_of_sessions_with_long_ids_stay_valid_and_distinct(
    session_id: str, tmp_path: Path
) -> None:
    session = Session(
        session_id,
        "ユーザー 3",
        (LabelledPlay("t 1", "listened"), LabelledPlay("t/2", "skip_early")),
    )
    events = session_events(session, start_ts=1_795_824_000_000)
    ids = [e.event_id for e in events]
    assert len(set(ids)) == 4 and all(len(i) <= 128 for i in ids)
    assert ids[0].startswith(session_id) == (len(session_id) <= 122)
    other = Session(session_id[:-1] + "!", "u", session.plays)
    assert set(ids).isdisjoint(e.event_id for e in session_events(other))
    for event in events:  # and the replay's wire format takes them
        assert parse_play_event(event.model_dump_json().encode()) == event
    path = tmp_path / "events.jsonl"
    write_play_events_jsonl([session], path, start_ts=1_795_824_000_000)
    assert load_play_events_jsonl(path) == [session]


def test_session_events_are_deterministic_per_seed() -> None:
    session = synthetic_sessions(1, seed=3)[0]
    assert session_events(session, 1_795_824_000_000) == session_events(session, 1_795_824_000_000)
    other = session_events(session, 1_795_824_000_000, rng_seed=1)
    assert [e.ts for e in other] != [e.ts for e in session_events(session, 1_795_824_000_000)]


def test_play_event_log_round_trips_sessions(tmp_path: Path) -> None:
    sessions = synthetic_sessions(20, seed=11)
    path = tmp_path / "events.jsonl"
    write_play_events_jsonl(sessions, path, start_ts=1_795_824_000_000)
    # Redelivered and broken lines do not change the sessions.
    lines = path.read_text().splitlines()
    with path.open("a") as fh:
        fh.write(lines[3] + "\n{not json\n" + json.dumps({"event_type": "pause"}) + "\n")
    assert load_play_events_jsonl(path) == sessions


def test_play_event_log_ignores_a_start_without_end(tmp_path: Path) -> None:
    session = Session(
        "s-9", "u-9", (LabelledPlay("t-1", "listened"), LabelledPlay("t-2", "skip_early"))
    )
    events = session_events(session)
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(e.model_dump_json() for e in events[:3]) + "\n")
    loaded = load_play_events_jsonl(path)
    assert loaded == [Session("s-9", "u-9", (LabelledPlay("t-1", "listened"),))]


def test_split_is_80_10_10_disjoint_and_independent_of_input_order() -> None:
    sessions = synthetic_sessions(500, seed=5)
    train, val, test = split_sessions(sessions, seed=7)
    assert (len(train), len(val), len(test)) == (400, 50, 50)
    ids = [{s.session_id for s in part} for part in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    reversed_split = split_sessions(list(reversed(sessions)), seed=7)
    assert [s.session_id for s in reversed_split[2]] == [s.session_id for s in test]
    other_seed = split_sessions(sessions, seed=8)
    assert {s.session_id for s in other_seed[2]} != ids[2]


def test_synthetic_sessions_are_labelled_and_deterministic() -> None:
    a, b = synthetic_sessions(50, seed=1), synthetic_sessions(50, seed=1)
    assert a == b
    assert fingerprint(a) == fingerprint(b) != fingerprint(synthetic_sessions(50, seed=2))
    assert all(s.session_id.startswith("syn-") for s in a)
    assert all(10 <= len(s.plays) <= 20 for s in a)
    outcomes = {p.outcome for s in a for p in s.plays}
    assert outcomes == {"listened", "skip_early", "skip_late"}


def test_load_sessions_describes_the_source(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sessions, description = load_sessions(settings, None, synthetic=True, limit=30)
    assert len(sessions) == 30
    assert description.startswith("SYNTHETIC")
    csv_path = write_csv(tmp_path)
    sessions, description = load_sessions(settings, csv_path, synthetic=False, limit=None)
    assert len(sessions) == 3
    assert description.startswith("real: MSSD-derived")
    assert "INFERRED" in description


def test_load_sessions_without_data_says_how_to_proceed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--synthetic"):
        load_sessions(Settings(data_dir=tmp_path / "nothing"), None, synthetic=False, limit=None)
