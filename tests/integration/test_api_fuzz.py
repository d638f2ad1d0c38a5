"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

The real server (uvicorn on a loopback port, real Redis, a real model registry) gets generated
valid and invalid requests for every documented operation, with a read and steer token;
every response must conform to the document (status codes, content types, bodies) and none may
be a 5xx (steers the fuzzer gets accepted go to the test's own topics on the real broker). The
live stream is left out: it never ends by design (``test_api.py`` covers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from serving.app import create_app
from tests.conftest import SettingsFactory
from tests.support.api_server import (
    list_for,
    running_api,
    session,
    shared_small_model,
    store_like_the_worker,
)
from tests.support.api_tokens import ADMIN, API_TOKENS
from tests.support.settings import isolated_settings

MAX_EXAMPLES = 40


# The document is the app's own; it does not depend on settings (nothing runs at import).
schema = schemathesis.openapi.from_dict(
    create_app(isolated_settings(api_tokens=API_TOKENS)).openapi()
).exclude(path_regex=r"/live$")


@schema.auth()
class AdminBearer:
    """Every generated request carries a read and steer token (the fuzzer checks on its own that
    requests without it are refused)."""

    def get(self, case: Any, context: Any) -> str:
        return ADMIN.token

    def set(self, case: Any, token: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@pytest.fixture
def base_url(settings_factory: SettingsFactory) -> Iterator[str]:
    """The real server for one operation's examples, Redis holding one listener's session."""
    np_settings = settings_factory(
        create_topics=True, model_dir=shared_small_model(), api_tokens=API_TOKENS
    )
    events = session("u-1", "s-1", [True, None])  # ids the fuzzer may well try
    store_like_the_worker(np_settings, events, [list_for(events[-1], ["t-9"])])  # type: ignore[arg-type]
    with running_api(np_settings) as url:
        yield url


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_conforms_to_its_openapi_document(case: Any, base_url: str) -> None:
    response = case.call_and_validate(base_url=base_url)
    assert response.status_code < 500, response.text
