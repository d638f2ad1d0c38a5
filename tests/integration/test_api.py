"""The API against the real Redis: what the worker's write path stores is what the API serves.

Most tests write a listener's session through :class:`features.store.FeatureStore` (the worker's
own write path); the last one runs the real worker on real sessions replayed through Kafka.
Every request sends a read token; who may call what is ``test_api_auth.py``'s subject.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from features.session import fold_events, state_summary, to_session_event
from nowplaying.events import RecommendationMessage, TrackStart
from nowplaying.settings import Settings
from serving.app import create_app
from tests.conftest import SettingsFactory
from tests.support.api_server import (
    iter_sse,
    list_for,
    running_api,
    session,
    shared_small_model,
    store_like_the_worker,
)
from tests.support.api_tokens import API_TOKENS, READER
from tests.support.pipeline import WorkerProcess, produce, real_session_events
from tests.support.readiness import readiness_document
from tests.support.services import RedisServer


@pytest.fixture
def settings(settings_factory: SettingsFactory, tmp_path: Path) -> Settings:
    return settings_factory(
        create_topics=False, model_dir=tmp_path / "empty-registry", api_tokens=API_TOKENS
    )


@pytest.fixture
def api(settings: Settings) -> Any:
    with TestClient(create_app(settings), headers=READER.headers) as client:
        yield client


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    assert error["message"]
    return error


# --- success and error cases per endpoint ---------------------------------------------------


def test_recommendations_are_the_users_latest_list(settings: Settings, api: TestClient) -> None:
    events = session("u-1", "s-1", [True, False, None])
    starts = [e for e in events if isinstance(e, TrackStart)]
    first, latest = list_for(starts[0], ["a", "b"]), list_for(starts[-1], ["c", "d", "e"])
    store_like_the_worker(settings, events, [first, latest])

    response = api.get("/v1/users/u-1/recommendations")
    assert response.status_code == 200
    assert RecommendationMessage.model_validate(response.json()) == (
        RecommendationMessage.model_validate_json(latest)
    )
    error = error_of(api.get("/v1/users/u-unknown/recommendations"), 404, "not_found")
    assert error["details"] == {"user_id": "u-unknown"}
    error = error_of(api.get("/v1/users/u%201/recommendations"), 404, "not_found")
    assert error["details"] == {"user_id": "u 1"}  # a valid id, decoded
    error_of(api.get("/v1/users/u%0A1/recommendations"), 422, "invalid_request")


def test_session_features_equal_the_offline_features(settings: Settings, api: TestClient) -> None:
    events = session("u-2", "s-2", [True, True, False, None])
    store_like_the_worker(settings, events)

    response = api.get("/v1/sessions/s-2/features")
    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == "s-2"
    offline = state_summary(fold_events(to_session_event(e) for e in events))
    assert body["features"] == json.loads(json.dumps(offline))
    assert body["features"]["skips"] == 2 and body["features"]["current_track"] == "t-s-2-3"
    error = error_of(api.get("/v1/sessions/s-none/features"), 404, "not_found")
    assert error["details"] == {"session_id": "s-none"}
    error_of(api.get("/v1/sessions/" + "s" * 129 + "/features"), 422, "invalid_request")


def test_now_playing_marks_skips_and_the_playing_track(settings: Settings, api: TestClient) -> None:
    events = session("u-3", "s-3", [True, False, None])
    start = events[-1]
    assert isinstance(start, TrackStart)
    store_like_the_worker(settings, events, [list_for(start, ["x", "y"])])

    body = api.get("/v1/users/u-3/now-playing").json()
    assert body["session_id"] == "s-3"
    assert body["now_playing"]["track_id"] == "t-s-3-2"
    assert [(p["track_id"], p["outcome"]) for p in body["recent_plays"]] == [
        ("t-s-3-2", None),
        ("t-s-3-1", "listened"),
        ("t-s-3-0", "skip_early"),
    ]
    assert body["recommendations"]["trigger_event_id"] == start.event_id
    assert body["features"]["position"] == 3
    error_of(api.get("/v1/users/nobody/now-playing"), 404, "not_found")


def test_active_users_most_recent_first(settings: Settings, api: TestClient) -> None:
    store_like_the_worker(settings, session("u-old", "s-old", [False]))
    later = [
        e.model_copy(update={"ts": e.ts + 3_600_000}) for e in session("u-new", "s-new", [None])
    ]
    store_like_the_worker(settings, later)
    assert api.get("/v1/users").json() == {"users": ["u-new", "u-old"]}
    assert api.get("/v1/users", params={"limit": 1}).json() == {"users": ["u-new"]}


# --- readiness ------------------------------------------------------------------------------


def test_readyz_is_ready_with_redis_and_a_model(settings_factory: SettingsFactory) -> None:
    registry = shared_small_model()
    settings = settings_factory(create_topics=False, model_dir=registry, api_tokens=API_TOKENS)
    with TestClient(create_app(settings)) as api:  # /readyz needs no token by default
        response = api.get("/readyz")
    assert response.status_code == 200, response.text
    ready = readiness_document(response.status_code, response.json())
    assert ready.ready and ready.failing == [] and ready.variants is None
    latest = (registry / "latest").read_text().strip()
    assert ready.model_version is not None
    assert latest.startswith(ready.model_version) or ready.model_version in latest
    assert set(ready.dependencies) == {"redis", "model"}


def test_readyz_names_the_model_when_the_registry_is_empty(api: TestClient) -> None:
    response = api.get("/readyz")
    ready = readiness_document(response.status_code, response.json())
    assert not ready.ready and ready.failing == ["model"]  # Redis is up
    assert "nowplaying train" in ready.dependencies["model"].detail


# --- the live stream ------------------------------------------------------------------------


def live_requests() -> float:
    """Finished live-stream requests, from this process's registry (the API runs in a thread)."""
    labels = {"route": "/v1/users/{user_id}/live", "status": "200"}
    return REGISTRY.get_sample_value("nowplaying_http_requests_total", labels) or 0.0


def test_live_stream_pushes_the_new_list_when_the_worker_writes_one(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(
        create_topics=False, api_live_poll_seconds=0.1, api_tokens=API_TOKENS
    )
    events = session("u-live", "s-live", [False, None])
    starts = [e for e in events if isinstance(e, TrackStart)]
    store_like_the_worker(settings, events[:1], [list_for(starts[0], ["first"])])

    snapshots: list[dict[str, Any]] = []
    streams_before = live_requests()
    with (
        running_api(settings) as base,
        httpx.Client(base_url=base, timeout=10, headers=READER.headers) as http,
    ):
        with http.stream("GET", "/v1/users/u-live/live") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            updater = threading.Timer(
                0.5,
                store_like_the_worker,
                (settings, events[1:], [list_for(starts[1], ["second", "third"])]),
            )
            updater.start()
            for event, data in iter_sse(stream.iter_lines()):
                assert event == "snapshot"
                snapshots.append(json.loads(data))
                if snapshots[-1]["recommendations"]["trigger_event_id"] == starts[1].event_id:
                    break
            updater.join()
        # the client left: the server ends the stream (and counts the request) by itself
        deadline = time.monotonic() + 10
        while live_requests() < streams_before + 1:
            assert time.monotonic() < deadline, "the live stream outlived its client"
            time.sleep(0.1)
        assert http.get("/healthz").status_code == 200

    first, last = snapshots[0], snapshots[-1]
    assert [r["track_id"] for r in first["recommendations"]["recommendations"]] == ["first"]
    assert first["now_playing"]["track_id"] == starts[0].track_id
    # pushed unasked, as soon as Redis changed: the new list, the new track, the ended one
    assert [r["track_id"] for r in last["recommendations"]["recommendations"]] == [
        "second",
        "third",
    ]
    assert last["now_playing"]["track_id"] == starts[1].track_id
    assert last["recent_plays"][1]["outcome"] == "listened"
    # one event per change, never the same snapshot twice in a row
    assert all(a != b for a, b in itertools.pairwise(snapshots))


# --- Redis outage ---------------------------------------------------------------------------


def test_redis_outage_is_503_and_the_api_recovers(
    settings_factory: SettingsFactory, private_redis: Callable[..., RedisServer]
) -> None:
    server = private_redis()
    settings = settings_factory(
        create_topics=False,
        redis_url=f"redis://127.0.0.1:{server.port}/0",
        api_tokens=API_TOKENS,
    )
    events = session("u-r", "s-r", [None])
    store_like_the_worker(settings, events, [list_for(events[0], ["a"])])  # type: ignore[arg-type]
    with (
        running_api(settings) as base,
        httpx.Client(base_url=base, timeout=15, headers=READER.headers) as http,
    ):
        assert http.get("/v1/users/u-r/recommendations").status_code == 200
        server.stop(save=True)
        error = error_of(http.get("/v1/users/u-r/recommendations"), 503, "dependency_unavailable")
        assert error["details"]["dependency"] == "redis"
        response = http.get("/readyz")
        assert "redis" in readiness_document(response.status_code, response.json()).failing
        assert http.get("/healthz").status_code == 200
        server.start()
        deadline = time.monotonic() + 15
        while (status := http.get("/v1/users/u-r/recommendations").status_code) != 200:
            assert time.monotonic() < deadline, f"still {status} after Redis came back"
            time.sleep(0.2)


# --- with the real worker -------------------------------------------------------------------


@pytest.mark.slow
def test_api_serves_what_the_running_worker_computed(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    settings = settings_factory(
        model_dir=shared_small_model(), worker_metrics_port=free_tcp_port(), api_tokens=API_TOKENS
    )
    sessions = real_session_events(settings, 4)
    with WorkerProcess(settings, tmp_path / "worker.log"):
        sent, _ = produce(settings, [e for s in sessions for e in s])
        last_start: dict[str, TrackStart] = {}
        for e in sent:
            if isinstance(e, TrackStart):
                last_start[e.user_id] = e
        with TestClient(create_app(settings), headers=READER.headers) as api:
            deadline = time.monotonic() + 90
            for user, start in last_start.items():
                while True:
                    response = api.get(f"/v1/users/{user}/recommendations")
                    if (
                        response.status_code == 200
                        and response.json()["trigger_event_id"] == start.event_id
                    ):
                        break
                    assert time.monotonic() < deadline, f"no list for {start.event_id}"
                    time.sleep(0.25)
                body = response.json()
                assert len(body["recommendations"]) == settings.top_k
                assert body["model_version"]
                events = [e for e in sent if e.session_id == start.session_id]
                features = api.get(f"/v1/sessions/{start.session_id}/features").json()
                deadline_f = time.monotonic() + 10
                offline = json.loads(
                    json.dumps(state_summary(fold_events(to_session_event(e) for e in events)))
                )
                while features.get("features") != offline and time.monotonic() < deadline_f:
                    time.sleep(0.25)
                    features = api.get(f"/v1/sessions/{start.session_id}/features").json()
                assert features["features"] == offline
            assert set(api.get("/v1/users").json()["users"]) == set(last_start)
