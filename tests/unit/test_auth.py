"""API access rules without a server: the start-up checks of the access settings, the 401 and
403 answers, stream tokens against the configured tokens, and the OpenAPI security
declarations. Through the real server: ``tests/integration/test_api_auth.py``."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serving.app import create_app
from serving.auth import Auth, AuthConfigError, is_loopback
from serving.errors import ApiError
from serving.tokens import Caller, mint_token
from tests.support.clock import Clock
from tests.support.settings import isolated_settings

HEX_A = hashlib.sha256(b"token-a").hexdigest()


# --- the access settings at start -------------------------------------------------------------


def test_auth_on_without_tokens_refuses_to_start_saying_how_to_mint_one() -> None:
    with pytest.raises(AuthConfigError, match="nowplaying api token create"):
        Auth(isolated_settings())
    with pytest.raises(AuthConfigError, match="NP_API_TOKENS entry 1"):
        Auth(isolated_settings(api_tokens="dash:read:nothex"))
    with pytest.raises(AuthConfigError, match="NP_API_STREAM_TOKEN_KEY"):
        Auth(isolated_settings(api_tokens=f"a:read:{HEX_A}", api_stream_token_key="short"))


def test_the_open_mode_refuses_a_public_interface_unless_told_twice() -> None:
    Auth(isolated_settings(api_auth="off"))  # loopback: fine
    with pytest.raises(AuthConfigError, match="NP_API_AUTH_OFF_ALLOW_PUBLIC"):
        Auth(isolated_settings(api_auth="off", api_host="0.0.0.0"))
    allowed = Auth(
        isolated_settings(api_auth="off", api_host="0.0.0.0", api_auth_off_allow_public=True)
    )
    assert allowed.open
    assert not Auth(isolated_settings(api_host="0.0.0.0", api_tokens=f"a:read:{HEX_A}")).open


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("", False),
        ("api.example.com", False),
    ],
)
def test_loopback_interfaces(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- checks: 401, 403 and stream tokens -------------------------------------------------------


def bearer(token: str) -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


def test_the_checks_answer_401_and_403_in_the_error_shape_naming_only_the_token_name() -> None:
    reader, reader_entry = mint_token("dash", ["read"])
    steerer, steerer_entry = mint_token("player", ["steer"])
    auth = Auth(
        isolated_settings(api_tokens=SecretStr(f"{reader_entry.entry},{steerer_entry.entry}"))
    )
    assert auth.caller_of(bearer(reader), "read") == Caller("dash", frozenset({"read"}))
    cases = [(None, 401, "unauthorized"), (bearer("np_wrong"), 401, "unauthorized")]
    cases.append((bearer(steerer), 403, "forbidden"))
    for credentials, status, code in cases:
        with pytest.raises(ApiError) as info:
            auth.caller_of(credentials, "read")
        error = info.value
        assert (error.status, error.code) == (status, code)
        assert error.headers is not None
        assert error.headers["WWW-Authenticate"].startswith('Bearer realm="nowplaying"')
        text = f"{error.message} {error.details}"
        assert steerer not in text and steerer_entry.digest.hex() not in text
    assert error.details == {"token": "player", "required_scope": "read", "scopes": ["steer"]}


def test_a_stream_token_needs_its_bearer_token_still_configured_with_the_scope() -> None:
    clock = Clock()
    _, dash = mint_token("dash", ["read"])
    _, player = mint_token("player", ["steer"])
    settings = isolated_settings(
        api_tokens=f"{dash.entry},{player.entry}", api_stream_token_key="k" * 32
    )
    auth = Auth(settings, clock=clock)
    stream = auth.stream_tokens.issue(Caller("dash", dash.scopes), "read").token
    assert auth.stream_caller_of(stream, "read").name == "dash"
    gone = auth.stream_tokens.issue(Caller("retired", frozenset({"read"})), "read").token
    for token in (gone, auth.stream_tokens.issue(Caller("player", player.scopes), "read").token):
        with pytest.raises(ApiError) as info:
            auth.stream_caller_of(token, "read")
        assert info.value.status == 401
    clock.now += 61
    with pytest.raises(ApiError, match="expired"):
        auth.stream_caller_of(stream, "read")
    # a replica with the same key accepts it; one with a random key does not
    same_key = Auth(settings, clock=Clock())
    assert same_key.stream_caller_of(stream, "read").name == "dash"
    random_key = Auth(isolated_settings(api_tokens=dash.entry), clock=Clock())
    with pytest.raises(ApiError, match="not valid"):
        random_key.stream_caller_of(stream, "read")


# --- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_declares_bearer_security_per_route_with_its_scope() -> None:
    _, entry = mint_token("a", ["read"])
    spec = create_app(isolated_settings(api_tokens=entry.entry)).openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "np_<random>",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["StreamToken"]["in"] == "query"
    security = {
        (method.upper(), path): op.get("security")
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    read = [{"HTTPBearer": ["read"]}]
    assert security == {
        ("GET", "/v1/users/{user_id}/recommendations"): read,
        ("GET", "/v1/sessions/{session_id}/features"): read,
        ("GET", "/v1/users/{user_id}/now-playing"): read,
        ("GET", "/v1/users/{user_id}/live"): [*read, {"StreamToken": ["read"]}],
        ("GET", "/v1/users"): read,
        ("POST", "/v1/stream-tokens"): read,
        ("POST", "/v1/sessions/{session_id}/steer"): [{"HTTPBearer": ["steer"]}],
        ("GET", "/healthz"): None,
        ("GET", "/readyz"): None,
        ("GET", "/metrics"): None,
    }
    steer = spec["paths"]["/v1/sessions/{session_id}/steer"]["post"]["responses"]
    assert {"202", "401", "403", "404", "409", "422", "429", "503"} <= set(steer)
    probes = create_app(isolated_settings(api_tokens=entry.entry, api_auth_probes="read"))
    assert probes.openapi()["paths"]["/readyz"]["get"]["security"] == read
    open_spec = create_app(isolated_settings(api_auth="off")).openapi()
    assert "securitySchemes" not in open_spec.get("components", {})


def test_a_caller_without_a_valid_token_is_refused_before_any_parameter_is_validated() -> None:
    reader, reader_entry = mint_token("dash", ["read"])
    settings = isolated_settings(api_tokens=reader_entry.entry, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for path in ("/v1/users/bad%0Aid/recommendations", "/v1/users/bad%0Aid/live"):
            assert client.get(path).status_code == 401
            with_token = client.get(path, headers={"Authorization": f"Bearer {reader}"})
            assert with_token.status_code == 422
        assert client.get("/v1/users", params={"limit": 0}).status_code == 401
        assert client.post("/v1/sessions/bad%0Aid/steer").status_code == 401
