"""The API without services: input validation, the error shape, readiness and route metrics.

Redis is a real client pointed at a port where nothing listens, so every call that reaches it
fails the way an outage does; validation must reject bad ids before any Redis call. The client
sends a read token (access itself: ``test_auth.py`` and ``tests/integration/test_api_auth.py``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from features.session import SessionEvent
from nowplaying.settings import Settings
from serving.app import create_app
from serving.middleware import route_label
from serving.queries import Play, now_playing_of, plays_of
from tests.support.api_tokens import API_TOKENS, READER, STEERER
from tests.support.readiness import readiness_document
from tests.support.settings import isolated_settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return isolated_settings(
        redis_url=f"redis://127.0.0.1:{_closed_port()}/0",
        model_dir=tmp_path / "models",
        redis_key_prefix="np-unit",
        api_tokens=API_TOKENS,
    )


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    down = redis.asyncio.Redis.from_url(
        settings.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5
    )
    app = create_app(settings, redis=down)
    with TestClient(app, raise_server_exceptions=False, headers=READER.headers) as c:
        yield c


def _assert_error(body: dict[str, Any], code: str) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


# --- plays: pairing starts and ends ---------------------------------------------------------


def test_plays_pair_each_end_with_its_start_and_mark_the_outcome() -> None:
    events = [
        SessionEvent("start", "a", 1000, None),
        SessionEvent("end", "a", 2000, "listened"),
        SessionEvent("start", "b", 2001, None),
        SessionEvent("end", "b", 2500, "skip_early"),
        SessionEvent("start", "c", 2501, None),
    ]
    plays = plays_of(events)
    assert plays == [
        Play(track_id="a", started_at=1000, ended_at=2000, outcome="listened"),
        Play(track_id="b", started_at=2001, ended_at=2500, outcome="skip_early"),
        Play(track_id="c", started_at=2501),
    ]
    assert now_playing_of(plays) == Play(track_id="c", started_at=2501)


def test_a_replayed_track_is_a_new_play_and_an_orphan_end_is_kept() -> None:
    events = [
        SessionEvent("end", "x", 500, "skip_late"),  # its start was trimmed from the log tail
        SessionEvent("start", "a", 1000, None),
        SessionEvent("end", "a", 2000, "skip_late"),
        SessionEvent("start", "a", 3000, None),
        SessionEvent("end", "a", 4000, "listened"),
    ]
    plays = plays_of(events)
    assert [(p.track_id, p.started_at, p.outcome) for p in plays] == [
        ("x", None, "skip_late"),
        ("a", 1000, "skip_late"),
        ("a", 3000, "listened"),
    ]
    assert now_playing_of(plays) is None  # the last track ended
    assert now_playing_of([]) is None


# --- validation and the error shape ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/users/{bad}/recommendations",
        "/v1/sessions/{bad}/features",
        "/v1/users/{bad}/now-playing",
        "/v1/users/{bad}/live",
    ],
)
@pytest.mark.parametrize(
    "bad",
    ["", "a" * 129, "%F0%9F%8E%B5" * 129, "new%0Aline", "nul%00", "tab%09", "c1%C2%85"],
    ids=["empty", "129", "129-emoji", "newline", "nul", "tab", "c1-control"],
)
def test_bad_ids_are_422_before_any_redis_call(client: TestClient, path: str, bad: str) -> None:
    response = client.get(path.format(bad=bad))
    assert response.status_code == 422
    error = _assert_error(response.json(), "invalid_request")
    assert error["details"][0]["loc"][:1] == ["path"]


@pytest.mark.parametrize(
    "path",
    ["/v1/users/{id}/recommendations", "/v1/sessions/{id}/features", "/v1/users/{id}/now-playing"],
)
@pytest.mark.parametrize(
    "encoded",
    [
        "u" * 128,
        "%F0%9F%8E%B5" * 128,  # 128 characters (256 UTF-16 units, 512 bytes)
        "has%20space",
        "br%7Bace%7D",
        "semi;colon",
        "%C3%A9",
        "a%2Fb",  # '/' in an id
        "x%2Frecommendations",
        "%25%22%27",
        "%2E%2E",
    ],
)
def test_any_id_without_control_characters_passes_validation(
    client: TestClient, path: str, encoded: str
) -> None:
    # Valid ids get past validation and fail on Redis instead (it is down here).
    response = client.get(path.format(id=encoded))
    assert response.status_code == 503, response.text
    assert _assert_error(response.json(), "dependency_unavailable")


def test_bad_query_parameter_is_422(client: TestClient) -> None:
    response = client.get("/v1/users", params={"limit": "0"})
    assert response.status_code == 422
    error = _assert_error(response.json(), "invalid_request")
    assert error["details"][0]["loc"] == ["query", "limit"]


def test_unknown_route_and_wrong_method_use_the_error_shape(client: TestClient) -> None:
    _assert_error(client.get("/v1/nothing-here").json(), "not_found")
    response = client.post("/v1/users/u-1/recommendations")
    assert response.status_code == 405
    _assert_error(response.json(), "method_not_allowed")


# --- Redis down -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/users/u-1/recommendations", "/v1/sessions/s-1/features", "/v1/users"]
)
def test_redis_down_is_503_naming_redis(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 503
    error = _assert_error(response.json(), "dependency_unavailable")
    assert error["details"]["dependency"] == "redis"


def test_healthz_is_up_while_dependencies_are_down(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_every_failing_dependency(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    ready = readiness_document(response.status_code, response.json())
    assert not ready.ready and ready.model_version is None
    assert sorted(ready.failing) == ["model", "redis"]
    assert "nowplaying train" in ready.dependencies["model"].detail  # says what to run
    assert ready.dependencies["redis"].detail.startswith("PING failed")


# --- metrics, docs, page --------------------------------------------------------------------


def _requests_count(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "nowplaying_http_requests_total", {"route": route, "status": status}
    )
    return value or 0.0


def test_requests_are_counted_by_route_template_not_raw_path(client: TestClient) -> None:
    template = "/v1/users/{user_id}/recommendations"
    before = _requests_count(template, "422"), _requests_count(template, "503")
    client.get("/v1/users/bad%0Aid/recommendations")
    client.get("/v1/users/other bad/recommendations")
    client.get("/v1/users/third%2Fbad/recommendations")
    assert _requests_count(template, "422") == before[0] + 1
    assert _requests_count(template, "503") == before[1] + 2
    text = client.get("/metrics").text
    assert "bad" not in text
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'nowplaying_http_request_duration_seconds_count{route="/healthz"}' in text


def test_unmatched_paths_share_one_label() -> None:
    assert route_label({"type": "http", "path": "/random/123"}) == "unmatched"
    assert route_label({"type": "http", "path": "/static/app.js"}) == "/static"


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE nowplaying_http_requests_total counter" in response.text


def test_openapi_documents_the_routes_and_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/users/{user_id}/recommendations",
        "/v1/sessions/{session_id}/features",
        "/v1/users/{user_id}/live",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    rec = spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]
    assert rec["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    (param,) = rec["parameters"]
    assert param["schema"]["maxLength"] == 128 and param["schema"]["pattern"]
    assert client.get("/docs").status_code == 200


def test_a_steer_body_that_is_not_json_is_a_documented_bad_request(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    steer = spec["paths"]["/v1/sessions/{session_id}/steer"]["post"]
    assert {"400", "422"} <= set(steer["responses"])
    response = client.post(
        "/v1/sessions/s-1/steer",
        content=b"#3H\xff",
        headers={**STEERER.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    _assert_error(response.json(), "bad_request")


def test_the_live_page_and_its_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'src="/static/app.js"' in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert "EventSource" in script.text
    assert client.get("/static/style.css").status_code == 200
