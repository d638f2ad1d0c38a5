"""Who may call the API, through the real server (uvicorn on a loopback socket, real Redis).

Every route of the app is called with no token, a wrong token, a token without the route's
scope and one with it; the table of routes must equal the app's own routes, so a new route
cannot go untested. Then: the live stream's signed stream tokens, the steering rate limit,
``nowplaying api`` itself (its logs never hold a token or a hash; the open mode's start-up
rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from nowplaying.settings import Settings
from serving.app import create_app
from serving.tokens import mint_token
from tests.conftest import SettingsFactory
from tests.support.api_server import (
    ApiProcess,
    list_for,
    running_api,
    session,
    store_like_the_worker,
)
from tests.support.api_tokens import ADMIN, API_TOKENS, READER, STEERER
from tests.support.settings import isolated_settings

#: Never configured anywhere.
WRONG = {"Authorization": f"Bearer {mint_token('nobody', ['read', 'steer'])[0]}"}

#: (method, route template) -> (access, a path to call, the status with the right token).
#: Access: "read" or "steer" (that scope's token), "open" (anyone), "probe" (NP_API_AUTH_PROBES).
ROUTES: dict[tuple[str, str], tuple[str, str, int]] = {
    ("GET", "/v1/users/{user_id}/recommendations"): ("read", "/v1/users/u-a/recommendations", 200),
    ("GET", "/v1/sessions/{session_id}/features"): ("read", "/v1/sessions/s-a/features", 200),
    ("GET", "/v1/users/{user_id}/now-playing"): ("read", "/v1/users/u-a/now-playing", 200),
    ("GET", "/v1/users/{user_id}/live"): ("read", "/v1/users/u-a/live", 200),
    ("GET", "/v1/users"): ("read", "/v1/users", 200),
    ("POST", "/v1/stream-tokens"): ("read", "/v1/stream-tokens", 200),
    # no body: refused as invalid only once the token and its scope passed
    ("POST", "/v1/sessions/{session_id}/steer"): ("steer", "/v1/sessions/s-a/steer", 422),
    ("GET", "/healthz"): ("open", "/healthz", 200),
    ("GET", "/readyz"): ("probe", "/readyz", 503),  # the registry is empty
    ("GET", "/metrics"): ("probe", "/metrics", 200),
    ("GET", "/"): ("open", "/", 200),
    ("GET", "/static"): ("open", "/static/app.js", 200),
    ("GET", "/openapi.json"): ("open", "/openapi.json", 200),
    ("GET", "/docs"): ("open", "/docs", 200),
    ("GET", "/docs/oauth2-redirect"): ("open", "/docs/oauth2-redirect", 200),
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, mounts included (HEAD aside); paths as
    OpenAPI writes them (``{user_id}``, without the ``:id`` path convertor)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        assert route.path is not None
        for method in route.methods or {"GET"}:  # a mount serves GET
            if method != "HEAD":
                found.add((method, route.path.replace(":id}", "}")))
    return found


def call(http: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """One request; a stream's response is closed once its status and headers are in."""
    with http.stream(method, path, headers=headers) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
    return response


@pytest.fixture
def base_url(settings_factory: SettingsFactory, tmp_path: Path) -> Iterator[str]:
    settings = settings_factory(
        create_topics=False, model_dir=tmp_path / "empty-registry", api_tokens=API_TOKENS
    )
    write_listener(settings)
    with running_api(settings) as url:
        yield url


def write_listener(settings: Settings) -> None:
    events = session("u-a", "s-a", [False, None])
    store_like_the_worker(settings, events, [list_for(events[-1], ["t-1"])])  # type: ignore[arg-type]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


def test_the_table_covers_every_route_of_the_app() -> None:
    assert set(ROUTES) == app_routes(create_app(isolated_settings(api_tokens=API_TOKENS)))


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_route_with_no_token_a_wrong_one_the_wrong_scope_and_the_right_one(
    base_url: str, route: tuple[str, str]
) -> None:
    access, path, ok_status = ROUTES[route]
    method = route[0]
    right = {"read": READER, "steer": STEERER}.get(access, ADMIN).headers
    other_scope = {"read": STEERER, "steer": READER}.get(access, READER).headers
    with httpx.Client(base_url=base_url, timeout=10) as http:
        responses = {
            name: call(http, method, path, headers)
            for name, headers in (
                ("none", {}),
                ("wrong", WRONG),
                ("other scope", other_scope),
                ("right", right),
            )
        }
    assert responses["right"].status_code == ok_status, responses["right"].text
    if access in ("open", "probe"):  # probes are open by default
        assert {r.status_code for r in responses.values()} == {ok_status}
        return
    for name in ("none", "wrong"):
        response = responses[name]
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
    error = assert_error(responses["other scope"], 403, "forbidden")
    assert error["details"]["required_scope"] == access


@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_probes_need_a_read_token_when_so_configured(
    settings_factory: SettingsFactory, tmp_path: Path, path: str
) -> None:
    settings = settings_factory(
        create_topics=False,
        model_dir=tmp_path / "empty-registry",
        api_tokens=API_TOKENS,
        api_auth_probes="read",
    )
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert_error(http.get(path), 401, "unauthorized")
        assert_error(http.get(path, headers=WRONG), 401, "unauthorized")
        assert_error(http.get(path, headers=STEERER.headers), 403, "forbidden")
        assert http.get(path, headers=READER.headers).status_code == ROUTES[("GET", path)][2]
        assert http.get("/healthz").status_code == 200


# --- the live stream's stream tokens ----------------------------------------------------------


def test_a_stream_token_opens_the_live_stream_and_nothing_else(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        grant = http.post("/v1/stream-tokens", headers=READER.headers)
        assert grant.status_code == 200 and grant.headers["cache-control"] == "no-store"
        token = grant.json()["token"]
        assert grant.json()["expires_in"] == 60
        assert READER.token not in token
        live = "/v1/users/u-a/live"
        with http.stream("GET", live, params={"stream_token": token}) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            first_event = next(line for line in lines if line.startswith("event:"))
            assert first_event == "event: snapshot"
        version, payload, signature = token.split(".")
        forged = f"{version}.{payload}.{signature[::-1]}"
        for bad in (forged, "v1.e30.AAAA", READER.token):
            refused = http.get(live, params={"stream_token": bad})
            assert_error(refused, 401, "unauthorized")
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        # only the live stream takes one, in its URL only
        assert_error(http.get("/v1/users", params={"stream_token": token}), 401, "unauthorized")
        as_bearer = {"Authorization": f"Bearer {token}"}
        assert_error(http.get("/v1/users/u-a/now-playing", headers=as_bearer), 401, "unauthorized")
        assert_error(http.get(live, headers=as_bearer), 401, "unauthorized")
        # a steer-only token gets no stream token
        assert_error(http.post("/v1/stream-tokens", headers=STEERER.headers), 403, "forbidden")


# --- the steering rate limit ------------------------------------------------------------------


def test_steering_is_rate_limited_per_token_with_retry_after(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(
        create_topics=False,
        model_dir=tmp_path / "empty-registry",
        api_tokens=API_TOKENS,
        api_steer_burst=2,
        api_steer_rate_per_second=0.01,  # one more request per 100 s
    )
    steer = "/v1/sessions/s-a/steer"
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(3):  # refused for lack of scope: takes nothing from any bucket
            assert_error(http.post(steer, headers=READER.headers), 403, "forbidden")
        for _ in range(2):
            assert_error(http.post(steer, headers=STEERER.headers), 422, "invalid_request")
        limited = http.post(steer, headers=STEERER.headers)
        error = assert_error(limited, 429, "rate_limited")
        retry_after = int(limited.headers["Retry-After"])
        assert 1 <= retry_after <= 100 and error["details"]["retry_after_seconds"] == retry_after
        assert "tests-steerer" in error["message"]
        # each token has its own bucket
        assert_error(http.post(steer, headers=ADMIN.headers), 422, "invalid_request")
        assert_error(http.post(steer, headers=STEERER.headers), 429, "rate_limited")


# --- nowplaying api itself --------------------------------------------------------------------


def test_no_token_nor_hash_reaches_the_logs_metrics_or_error_bodies(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    settings = settings_factory(
        create_topics=False,
        model_dir=tmp_path / "empty-registry",
        api_tokens=API_TOKENS,
        api_port=free_tcp_port(),
        api_steer_burst=1,
        api_steer_rate_per_second=0.01,  # the second steer is refused however slow the loop
        log_level="DEBUG",
    )
    write_listener(settings)
    seen: list[str] = []  # every body the API answered
    with (
        ApiProcess(settings, tmp_path / "api.log") as api,
        httpx.Client(base_url=api.base_url, timeout=10) as http,
    ):
        for headers in (READER.headers, STEERER.headers, ADMIN.headers, WRONG, {}):
            for (method, _), (_, path, _) in ROUTES.items():
                response = call(http, method, path, headers)
                if not path.endswith("/live"):
                    seen.append(response.text)
        stream_token = http.post("/v1/stream-tokens", headers=READER.headers).json()["token"]
        with http.stream(
            "GET", "/v1/users/u-a/live", params={"stream_token": stream_token}
        ) as live:
            assert live.status_code == 200
        bad = http.get("/v1/users/u-a/live", params={"stream_token": stream_token + "x"})
        limited = http.post("/v1/sessions/s-a/steer", headers=STEERER.headers)
        assert limited.status_code == 429
        seen += [bad.text, limited.text, http.get("/metrics").text]
    log = api.log_text()
    assert "nowplaying api on http://" in log  # the log was captured, and the refusals in it:
    assert "refused GET /v1/users: 401 a bearer token is required" in log  # DEBUG
    assert "refused GET /v1/users: 401 the bearer token is not valid" in log
    assert "refused GET /v1/users: 403 token 'tests-steerer' lacks the 'read' scope" in log
    assert "refused GET /v1/users/u-a/live: 401 the stream token is not valid" in log
    assert "refused POST /v1/sessions/s-a/steer: 429 too many steering requests" in log
    secrets = [WRONG["Authorization"].removeprefix("Bearer "), stream_token]
    for credential in (READER, STEERER, ADMIN):
        secrets += [credential.token, credential.entry.rsplit(":", 1)[1]]
    for secret in secrets:
        assert secret not in log, "a token or hash in the API's log"
        assert not [body for body in seen if secret in body], "a token or hash in a response"


def test_auth_on_without_tokens_does_not_start(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    settings = settings_factory(create_topics=False, api_port=free_tcp_port())
    api = ApiProcess(settings, tmp_path / "api.log")
    assert api.wait_exit() == 2
    assert "nowplaying api token create" in api.log_text()


def test_the_open_mode_refuses_a_public_interface_and_starts_when_told_twice(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    public = settings_factory(
        create_topics=False, api_auth="off", api_host="0.0.0.0", api_port=free_tcp_port()
    )
    write_listener(public)
    refused = ApiProcess(public, tmp_path / "refused.log")
    assert refused.wait_exit() == 2
    assert "NP_API_AUTH_OFF_ALLOW_PUBLIC" in refused.log_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{public.api_port}/healthz", timeout=2)

    told_twice = public.model_copy(update={"api_auth_off_allow_public": True})
    with ApiProcess(told_twice, tmp_path / "open.log") as api:
        users = httpx.get(f"{api.base_url}/v1/users", timeout=10)
        assert users.status_code == 200 and users.json() == {"users": ["u-a"]}
        assert httpx.get(f"{api.base_url}/openapi.json", timeout=10).status_code == 200
    warnings = [line for line in api.log_text().splitlines() if "WARNING" in line]
    assert any("the API is OPEN" in line and "0.0.0.0" in line for line in warnings), warnings
