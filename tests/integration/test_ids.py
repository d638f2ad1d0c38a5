"""Opaque ids end to end: hypothesis draws user, session and track ids from all of Unicode
(spaces, braces, quotes, ``%``, ``/``, other scripts, emoji; 1-128 characters, no control
characters) and sends them through the real pipeline (Kafka, the worker, Redis) and the real
API server; ids holding a control character or an escaped lone surrogate are dead-lettered
with a reason naming the field.

Example counts are small: each pipeline example is a produce and a few Kafka reads.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from features.session import fold_events, state_summary, to_session_event
from nowplaying.clients import redis_client
from nowplaying.events import DeadLetter, RecommendationMessage, TrackEnd, TrackStart
from nowplaying.keys import Keys, escape_id
from nowplaying.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api_server import (
    iter_sse,
    list_for,
    running_api,
    session_plays,
    shared_small_model,
    store_like_the_worker,
)
from tests.support.api_tokens import API_TOKENS, READER
from tests.support.faults import assert_healthy, starts_of, triggers_of
from tests.support.ids import control_characters, opaque_ids
from tests.support.pipeline import TopicReader, WorkerProcess, check_invariant, produce

pytestmark = pytest.mark.slow

PlayEvent = TrackStart | TrackEnd
ID_FIELDS = ("event_id", "user_id", "session_id", "track_id")
FEW = settings(
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example costs real I/O
    suppress_health_check=list(HealthCheck),
)
#: The ids of the report that started it all: every event of the first two was dead-lettered.
REPORTED = ("ユーザー-3", "user with space 4", "x" * 120 + "12345678")


def play_events(user: str, sid: str, tracks: list[str]) -> list[PlayEvent]:
    """A session playing ``tracks``: each one started and ended (skips alternate), except the
    last, still playing. Event ids are fresh, so examples never share one."""
    skipped: list[bool | None] = [i % 2 == 0 for i in range(len(tracks) - 1)]
    plays = list(zip(tracks, [*skipped, None], strict=True))
    return session_plays(
        user,
        sid,
        plays,
        event_ids=uuid.uuid4().hex,
        ts=int(time.time() * 1000),
        spacing_ms=0,
        end_after_ms=1,
    )


@st.composite
def refused_ids(draw: st.DrawFn) -> tuple[str, str, str]:
    """(field, a value the contract refuses, the reason's start): an allowed id with a control
    character or a lone surrogate put in."""
    field = draw(st.sampled_from(ID_FIELDS))
    base = draw(opaque_ids(max_size=127))
    at = draw(st.integers(0, len(base)))
    if draw(st.booleans()):
        char = draw(control_characters())
        reason = f"{field}: control character U+{ord(char):04X} at position {at} is not allowed"
    else:
        char = chr(draw(st.integers(0xD800, 0xDFFF)))
        reason = f"{field}: lone surrogate U+{ord(char):04X} at position {at} is not a character"
    return field, base[:at] + char + base[at:], reason


# --- the pipeline -------------------------------------------------------------------------------


def test_any_ids_flow_through_the_worker_and_refused_ones_are_dead_lettered(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    cfg = settings_factory(
        api_tokens=API_TOKENS,
        model_dir=shared_small_model(),
        worker_metrics_port=free_tcp_port(),
        retry_max_seconds=1.0,
    )
    sent: list[PlayEvent] = []
    bad: list[bytes] = []
    with (
        WorkerProcess(cfg, tmp_path / "worker.log") as worker,
        TopicReader(cfg, cfg.topic_recommendations) as recs,
        TopicReader(cfg, cfg.topic_dead_letters) as dlq,
    ):
        assert_healthy(worker)

        @settings(FEW, max_examples=6)
        @given(
            user=opaque_ids(),
            sid=opaque_ids(),
            tracks=st.lists(opaque_ids(), min_size=1, max_size=3),
            refused=refused_ids(),
        )
        @example(REPORTED[0], REPORTED[1], [REPORTED[2], "{t}"], ("user_id", "u\n", "user_id: "))
        @example(REPORTED[1], REPORTED[2], [REPORTED[0]], ("track_id", "t\x85", "track_id: "))
        @example(REPORTED[2], REPORTED[0], ["%7B", "{"], ("session_id", "\ud800", "session_id: "))
        def check(user: str, sid: str, tracks: list[str], refused: tuple[str, str, str]) -> None:
            events = play_events(user, sid, tracks)
            field, value, reason = refused
            wrong = events[0].model_dump(mode="json") | {"event_id": uuid.uuid4().hex}
            raw = json.dumps(wrong | {field: value}).encode()
            got, _ = produce(cfg, [*events, (user.encode(), raw)])
            sent.extend(got)
            bad.append(raw)
            recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=60, settle=0.2)
            dlq.read_until(lambda rs: len(rs) >= len(bad), timeout=30, settle=0.2)

            mine = starts_of(got)
            for r in (r for r in recs.records if json.loads(r.value)["trigger_event_id"] in mine):
                message = RecommendationMessage.model_validate_json(r.value)
                assert (message.user_id, message.session_id) == (user, sid)
                assert r.key == user.encode()  # keyed by the user id, UTF-8
            (letter,) = [
                d
                for d in (DeadLetter.model_validate_json(r.value) for r in dlq.records)
                if d.payload_text == raw.decode()
            ]
            assert letter.error_class == "invalid_schema"
            assert letter.reason.startswith(reason), letter.reason
            assert letter.key == user
            # attribution: its state always; an outcome once a list's next play has ended
            outcome = {"out"} if len(tracks) >= 3 else set()
            keys = {"log", "seen", "state", "recs", "pos", "att"} | outcome
            assert session_keys_found(cfg, sid) == keys
            check_invariant(cfg, sent, bad, recs.records, dlq.records)

        check()
        assert_healthy(worker)

    latest = {e.user_id: e.event_id for e in sent if isinstance(e, TrackStart)}
    with (
        running_api(cfg) as base,
        httpx.Client(base_url=base, headers=READER.headers, timeout=10) as http,
    ):
        for user, trigger in latest.items():
            response = http.get(f"/v1/users/{segment(user)}/recommendations")
            assert response.status_code == 200, (user, response.text)
            assert response.json()["user_id"] == user
            assert response.json()["trigger_event_id"] == trigger
    print(f"\nopaque ids: {len(sent)} events of {len(latest)} users, {len(bad)} refused")


def session_keys_found(cfg: Settings, sid: str) -> set[str]:
    """The kinds of key SCAN finds under the session's escaped id (no glob escaping needed)."""
    client = redis_client(cfg)
    try:
        pattern = f"{cfg.redis_key_prefix}:s:{{{escape_id(sid)}}}:*"
        return {k.decode().rsplit(":", 1)[1] for k in client.scan_iter(match=pattern, count=1000)}
    finally:
        client.close()


# --- the API ------------------------------------------------------------------------------------


def segment(value: str) -> str:
    """The id as one percent-encoded path segment. '.' is unreserved, but the segments '.' and
    '..' would be removed by the client, so those go as %2E."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if value in {".", ".."} else encoded


def test_the_api_serves_any_id_exactly_as_stored(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    cfg = settings_factory(
        create_topics=False, model_dir=tmp_path / "no-models", api_tokens=API_TOKENS
    )
    keys = Keys(cfg.redis_key_prefix)
    with (
        running_api(cfg) as base,
        httpx.Client(base_url=base, headers=READER.headers, timeout=10) as http,
    ):

        @settings(FEW, max_examples=30)
        @given(
            user=opaque_ids(),
            sid=opaque_ids(),
            tracks=st.lists(opaque_ids(), min_size=2, max_size=2),
            unknown=opaque_ids(),
            control=control_characters(),
        )
        @example(REPORTED[0], REPORTED[1], [REPORTED[2], "a/b"], "x/recommendations", "\n")
        @example("..", ".", ["%", "%25"], "a/../b", "\x00")
        def check(user: str, sid: str, tracks: list[str], unknown: str, control: str) -> None:
            events = play_events(user, sid, tracks)
            trigger = events[-1]
            assert isinstance(trigger, TrackStart)
            store_like_the_worker(cfg, events, [list_for(trigger, [*tracks[::-1], unknown])])
            try:
                check_views(http, events, unknown, control)
            finally:
                forget(cfg, keys, user, sid)
            checked.append(user)

        checked: list[str] = []
        check()
    print(f"\nthe API served {len(checked)} listeners' ids")
    assert len(checked) >= 30


def check_views(http: httpx.Client, events: list[PlayEvent], unknown: str, control: str) -> None:
    user, sid, trigger = events[0].user_id, events[0].session_id, events[-1].event_id
    u, s = segment(user), segment(sid)
    tracks = [e.track_id for e in events if isinstance(e, TrackStart)]
    offline = json.loads(json.dumps(state_summary(fold_events(map(to_session_event, events)))))

    recs = http.get(f"/v1/users/{u}/recommendations")
    assert recs.status_code == 200, recs.text
    assert (recs.json()["user_id"], recs.json()["session_id"]) == (user, sid)
    assert recs.json()["trigger_event_id"] == trigger

    features = http.get(f"/v1/sessions/{s}/features")
    assert features.status_code == 200, features.text
    assert features.json() == {"session_id": sid, "features": offline}

    view = http.get(f"/v1/users/{u}/now-playing").json()
    assert (view["user_id"], view["session_id"]) == (user, sid)
    assert view["now_playing"]["track_id"] == tracks[-1]
    assert [p["track_id"] for p in view["recent_plays"]] == tracks[::-1]

    with http.stream("GET", f"/v1/users/{u}/live") as live:
        snapshots = (data for name, data in iter_sse(live.iter_lines()) if name == "snapshot")
        snapshot = json.loads(next(snapshots))
    assert snapshot == view

    assert user in http.get("/v1/users", params={"limit": 500}).json()["users"]

    if unknown != user:
        missing = http.get(f"/v1/users/{segment(unknown)}/recommendations")
        assert missing.status_code == 404
        assert missing.json()["error"]["details"] == {"user_id": unknown}  # decoded exactly
    if unknown != sid:
        missing = http.get(f"/v1/sessions/{segment(unknown)}/features")
        assert missing.json()["error"]["details"] == {"session_id": unknown}
    refused = http.get(f"/v1/users/{segment(unknown + control)}/recommendations")
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"] == ["path", "user_id"]


def forget(cfg: Settings, keys: Keys, user: str, sid: str) -> None:
    """Delete what one example stored, so a later example may draw the same ids."""
    client = redis_client(cfg)
    try:
        client.delete(
            keys.session_log(sid),
            keys.session_seen(sid),
            keys.session_state(sid),
            keys.session_recs(sid),
        )
        client.delete(keys.user_latest(user), keys.user_session(user))
        client.zrem(keys.active_users(), user)
    finally:
        client.close()
