"""Session steering end to end: ``nowplaying worker`` as a real process, the real broker and
Redis, the real API, a real model trained on the real sessions.

A steer (produced to ``play-events`` or posted to the API) is answered at once by a refreshed
list on the recommendations topic, stored in Redis as the listener's latest, shown by the API
with the intents that shaped it; the session's features show its active intents. Steer events
are deduplicated by event id (a redelivery republishes the stored list byte for byte), and bad
ones are dead-lettered with a reason while valid events keep flowing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from features.artifacts import TrackArtifacts
from features.steering import popularity_percentile
from features.store.base import as_text
from models.registry import resolve_version_dir
from nowplaying.clients import redis_client
from nowplaying.events import PlayEvent, RecommendationMessage, TrackStart
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from tests.support.api_server import running_api
from tests.support.api_tokens import ADMIN, API_TOKENS
from tests.support.pipeline import TopicReader, WorkerProcess, produce, real_session_events

pytestmark = pytest.mark.slow


@dataclass
class Listener:
    """A worker, an API and one listener whose session is in the middle of a track."""

    settings: Settings
    events: list[PlayEvent]
    api: httpx.Client
    recs: TopicReader

    @property
    def user(self) -> str:
        return self.events[0].user_id

    @property
    def session(self) -> str:
        return self.events[0].session_id

    def list_for(self, trigger: str, timeout: float = 60.0) -> tuple[RecommendationMessage, Any]:
        """The (first) list published for ``trigger``, and its record."""

        def found(records: list[Any]) -> bool:
            return any(json.loads(r.value)["trigger_event_id"] == trigger for r in records)

        self.recs.read_until(found, timeout=timeout, settle=0.3)
        record = next(
            r for r in self.recs.records if json.loads(r.value)["trigger_event_id"] == trigger
        )
        return RecommendationMessage.model_validate_json(record.value), record

    def steer(self, intent: str, track: str | None = None, **extra: Any) -> str:
        body: dict[str, Any] = {"user_id": self.user, "intent": intent, **extra}
        if track is not None:
            body["track_id"] = track
        response = self.api.post(f"/v1/sessions/{self.session}/steer", json=body)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["session_id"] == self.session and accepted["intent"] == intent
        event_id: str = accepted["event_id"]
        return event_id


@pytest.fixture
def listener(worker_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Listener]:
    settings = worker_settings(api_tokens=API_TOKENS, api_steer_burst=100)
    (session,) = real_session_events(settings, 1, skip=3)
    starts = [i for i, e in enumerate(session) if isinstance(e, TrackStart)]
    events, _ = produce(settings, session[: starts[3] + 1])  # ends while the 4th track plays
    with (
        WorkerProcess(settings, tmp_path / "worker.log"),
        running_api(settings) as base,
        httpx.Client(base_url=base, headers=ADMIN.headers, timeout=30) as api,
        TopicReader(settings, settings.topic_recommendations) as recs,
    ):
        yield Listener(settings, events, api, recs)


def ids(message: RecommendationMessage) -> list[str]:
    return [r.track_id for r in message.recommendations]


def test_each_intent_through_the_api_refreshes_the_list_at_once(listener: Listener) -> None:
    artifacts = TrackArtifacts.load(resolve_version_dir(listener.settings.model_dir, None))
    last_start = listener.events[-1]
    plain, _ = listener.list_for(last_start.event_id, timeout=120)
    assert plain.steering is None
    current = last_start.track_id
    rejected = plain.recommendations[0].track_id

    steps = [
        ("more_like_this", current, "more_like_this"),
        ("less_like_this", rejected, "more_like_this+less_like_this"),
        ("discover", None, "more_like_this+less_like_this+discover"),
        ("familiar", None, "more_like_this+less_like_this+familiar"),  # replaces discover
    ]
    seen: dict[str, RecommendationMessage] = {}
    for intent, track, label in steps:
        event_id = listener.steer(intent, track)
        message, _ = listener.list_for(event_id)
        assert message.steering == label, (intent, message.steering)
        assert message.session_id == listener.session and message.user_id == listener.user
        assert len(ids(message)) == listener.settings.top_k == len(set(ids(message)))
        if intent != "more_like_this":  # from less_like_this on
            assert rejected not in ids(message)
        # in Redis, and in the API: the listener's latest list, the session's intents
        latest = listener.api.get(f"/v1/users/{listener.user}/recommendations").json()
        assert latest["trigger_event_id"] == event_id and latest["steering"] == label
        features = listener.api.get(f"/v1/sessions/{listener.session}/features").json()
        kinds = [i["kind"] for i in features["features"]["intents"]]
        assert kinds == label.split("+")
        seen[intent] = message
    assert ids(seen["more_like_this"]) != ids(plain)

    def popularity(message: RecommendationMessage) -> float:
        return float(popularity_percentile(artifacts, artifacts.indices_of(ids(message))).mean())

    assert popularity(seen["discover"]) < popularity(seen["less_like_this"])

    # reset: no intent left, the very list the track start got (the state is the same again)
    event_id = listener.steer("reset")
    message, _ = listener.list_for(event_id)
    assert message.steering is None
    assert message.recommendations == plain.recommendations
    features = listener.api.get(f"/v1/sessions/{listener.session}/features").json()
    assert features["features"]["intents"] == []
    # the steers are not plays: the live view's plays are the session's own
    view = listener.api.get(f"/v1/users/{listener.user}/now-playing").json()
    assert view["now_playing"]["track_id"] == current
    assert np.isfinite([r.score for r in message.recommendations]).all()


def steer_record(listener: Listener, event_id: str, **fields: Any) -> tuple[bytes, bytes]:
    body = {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": "steer",
        "user_id": listener.user,
        "session_id": listener.session,
        "ts": listener.events[-1].ts + 1000,
        **fields,
    }
    return listener.user.encode(), json.dumps(body).encode()


def test_steer_events_are_deduplicated_and_a_redelivery_republishes_the_stored_list(
    listener: Listener,
) -> None:
    listener.list_for(listener.events[-1].event_id, timeout=120)
    record = steer_record(listener, "steer-dup-1", intent="discover")
    produce(listener.settings, [record, record])
    listener.recs.read_until(
        lambda rs: sum(json.loads(r.value)["trigger_event_id"] == "steer-dup-1" for r in rs) >= 2,
        timeout=60,
    )
    copies = [r.value for r in listener.recs.records if b'"steer-dup-1"' in r.value]
    assert len(copies) == 2 and copies[0] == copies[1]  # the stored list, byte for byte
    assert json.loads(copies[0])["steering"] == "discover"
    # applied once: one steer record in the session log, one active intent
    keys = Keys(listener.settings.redis_key_prefix)
    redis = redis_client(listener.settings)
    try:
        log = [as_text(r) for r in redis.lrange(keys.session_log(listener.session), 0, -1)]
    finally:
        redis.close()
    assert sum(r.startswith('["i"') for r in log) == 1
    # the API with the same event id (a client's retry): one list, the same one again
    again = listener.steer("discover", event_id="steer-dup-1")
    assert again == "steer-dup-1"
    listener.recs.read_until(
        lambda rs: sum(json.loads(r.value)["trigger_event_id"] == "steer-dup-1" for r in rs) >= 3,
        timeout=60,
    )
    copies = [r.value for r in listener.recs.records if b'"steer-dup-1"' in r.value]
    assert len(set(copies)) == 1


def test_bad_steer_events_are_dead_lettered_with_a_reason(listener: Listener) -> None:
    settings = listener.settings
    bad = {
        "bad-1": ({"intent": "louder"}, "unknown_intent", "unknown intent 'louder'"),
        "bad-2": ({"intent": "more_like_this"}, "missing_track_id", "needs a track_id"),
        "bad-3": ({"intent": "reset", "track_id": "t-1"}, "unexpected_track_id", "takes no"),
        "bad-4": ({"intent": "discover", "ts": "soon"}, "invalid_schema", "ts"),
    }
    records = [steer_record(listener, eid, **fields) for eid, (fields, _, _) in bad.items()]
    good = steer_record(listener, "good-1", intent="familiar")
    produce(settings, [*records, good])
    message, _ = listener.list_for("good-1", timeout=120)  # valid events keep flowing
    assert message.steering == "familiar"
    with TopicReader(settings, settings.topic_dead_letters) as dlq:
        dlq.read_until(lambda rs: len(rs) >= len(bad), timeout=60, settle=0.5)
        letters = [json.loads(r.value) for r in dlq.records]
    assert len(letters) == len(bad)
    for letter in letters:
        event_id = json.loads(letter["payload_text"])["event_id"]
        _, error_class, in_reason = bad[event_id]
        assert letter["error_class"] == error_class
        assert in_reason in letter["reason"]
        assert letter["source_topic"] == settings.topic_play_events
    # none of them reached the session or got a list
    assert not any(b'"bad-' in r.value for r in listener.recs.records)


def test_the_api_refuses_bad_and_misdirected_steers(listener: Listener) -> None:
    listener.list_for(listener.events[-1].event_id, timeout=120)
    path = f"/v1/sessions/{listener.session}/steer"
    for body in (
        {"user_id": listener.user, "intent": "louder"},
        {"user_id": listener.user, "intent": "more_like_this"},
        {"user_id": listener.user, "intent": "discover", "track_id": "t-1"},
        {"intent": "discover"},
    ):
        response = listener.api.post(path, json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_request"
    unknown = listener.api.post(path, json={"user_id": "nobody", "intent": "reset"})
    assert unknown.status_code == 404
    other = listener.api.post(
        "/v1/sessions/another/steer", json={"user_id": listener.user, "intent": "reset"}
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "not_current_session"
