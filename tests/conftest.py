"""Fixtures shared by every test: the running services and per-test isolated Settings.

The services are the ones ``make up`` starts (a real Kafka broker, a real Redis server); their
addresses come from the same environment variables as ``make up`` (``NP_KAFKA_PORT``,
``NP_REDIS_PORT``) or, when set, ``NP_KAFKA_BOOTSTRAP_SERVERS`` / ``NP_REDIS_URL``.
A test that needs a service and cannot reach it FAILS with a hint, locally and in CI alike;
it is never skipped. In CI (``CI`` set) any skip at all is turned into a failure.

Isolation: other engineers' test runs share the broker and Redis, so every test that touches
them takes its names from :func:`settings_factory` / :func:`unique_settings`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import Any, NoReturn, Protocol

import pytest

from nowplaying.clients import kafka_admin, redis_client
from nowplaying.settings import Settings
from streams.topics import delete_topics, ensure_topics
from tests.support.services import free_port
from tests.support.settings import isolated_settings

#: Partitions of the topics the fixtures create (the Settings default of 8 is for production).
TEST_TOPIC_PARTITIONS = 2


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def _unreachable(what: str, where: str, detail: str) -> NoReturn:
    hint = (
        "CI must start it: .ci/run runs `make test`, which runs `make up` first."
        if in_ci()
        else "Start the local services with `make up` (or `scripts/services.sh up`)."
    )
    pytest.fail(f"{what} is not reachable at {where}: {detail}. {hint}", pytrace=False)


def service_kafka_bootstrap() -> str:
    """The bootstrap address of the shared broker (``make up``), from the environment."""
    return os.environ.get("NP_KAFKA_BOOTSTRAP_SERVERS") or (
        f"127.0.0.1:{os.environ.get('NP_KAFKA_PORT') or 9092}"
    )


def service_redis_url() -> str:
    """The URL of the shared Redis server (``make up``), from the environment."""
    return os.environ.get("NP_REDIS_URL") or (
        f"redis://127.0.0.1:{os.environ.get('NP_REDIS_PORT') or 6380}/0"
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port`` of the real Kafka broker, checked to answer metadata requests.

    Fails the test (never skips) when the broker is unreachable.
    """
    bootstrap = service_kafka_bootstrap()
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        admin = kafka_admin(
            isolated_settings(kafka_bootstrap_servers=bootstrap),
            bootstrap_timeout_ms=10000,
            request_timeout_ms=10000,
        )
        try:
            controller = admin.describe_cluster().get("controller_id", -1)
        finally:
            admin.close()
    except Exception as exc:  # kafka-python raises several types for an absent broker
        _unreachable("The Kafka broker", bootstrap, f"{type(exc).__name__}: {exc}")
    if controller < 0:
        _unreachable("The Kafka broker", bootstrap, "it answers but has no active controller")
    return bootstrap


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://`` URL of the real Redis server, checked with PING.

    Fails the test (never skips) when Redis is unreachable.
    """
    url = service_redis_url()
    client = redis_client(isolated_settings(redis_url=url))
    try:
        client.ping()
    except Exception as exc:  # redis-py ConnectionError, TimeoutError, AuthenticationError
        _unreachable("Redis", url, f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return url


class SettingsFactory(Protocol):
    def __call__(self, *, create_topics: bool = True, **overrides: Any) -> Settings: ...


@pytest.fixture
def settings_factory(request: pytest.FixtureRequest) -> Generator[SettingsFactory, None, None]:
    """Make :class:`Settings` isolated from every other test run on the shared services.

    ``settings_factory(create_topics=True, **overrides) -> Settings``; each call gets a fresh
    random suffix ``<id>`` and sets:

    * ``topic_play_events`` / ``topic_recommendations`` / ``topic_dead_letters`` /
      ``topic_outcomes``: ``t-<id>-play`` / ``t-<id>-recs`` / ``t-<id>-dlq`` /
      ``t-<id>-outcomes``, with ``topic_partitions`` = 2;
    * ``consumer_group``: ``g-<id>``; ``redis_key_prefix``: ``t-<id>``;
    * ``kafka_bootstrap_servers`` / ``redis_url``: the running services (the
      ``kafka_bootstrap`` / ``redis_url`` fixtures, which FAIL when a service is down).

    ``overrides`` are applied on top (any Settings field). With ``create_topics=True`` the
    three topics are created (and waited for) before it returns; pass ``False`` for a test
    that only needs Redis, which then does not need the broker. Every other field keeps its
    Settings default: ``NP_*`` variables and ``.env`` are NOT read
    (:func:`tests.support.settings.isolated_settings`).

    Teardown deletes the topics this factory created and every Redis key under the prefixes
    it handed out, so tests need no cleanup of their own.
    """
    made: list[tuple[Settings, bool]] = []

    def make(*, create_topics: bool = True, **overrides: Any) -> Settings:
        suffix = uuid.uuid4().hex[:12]
        fields: dict[str, Any] = {
            "topic_play_events": f"t-{suffix}-play",
            "topic_recommendations": f"t-{suffix}-recs",
            "topic_dead_letters": f"t-{suffix}-dlq",
            "topic_outcomes": f"t-{suffix}-outcomes",
            "topic_partitions": TEST_TOPIC_PARTITIONS,
            "consumer_group": f"g-{suffix}",
            "redis_key_prefix": f"t-{suffix}",
        }
        if "kafka_bootstrap_servers" not in overrides:
            fields["kafka_bootstrap_servers"] = (
                request.getfixturevalue("kafka_bootstrap")
                if create_topics
                else service_kafka_bootstrap()
            )
        if "redis_url" not in overrides:
            fields["redis_url"] = request.getfixturevalue("redis_url")
        settings = isolated_settings(**(fields | overrides))
        created = False
        if create_topics:
            problems = [s for s in ensure_topics(settings) if not s.ok]
            created = True
            if problems:
                pytest.fail(f"could not create test topics: {problems}", pytrace=False)
        made.append((settings, created))
        return settings

    yield make
    for settings, created in made:
        _cleanup(settings, created)


def _cleanup(settings: Settings, created_topics: bool) -> None:
    """Best effort: a cleanup problem must not hide the test's own result."""
    if created_topics:
        try:
            delete_topics(settings)
        except Exception as exc:  # pragma: no cover - broker gone during teardown
            logging.getLogger(__name__).warning("could not delete test topics: %s", exc)
    try:
        client = redis_client(settings)
        try:
            keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                for key in keys[start : start + 500]:
                    client.delete(key)  # one by one: keys of a cluster live on many slots
        finally:
            client.close()
    except Exception as exc:  # pragma: no cover - Redis gone during teardown
        logging.getLogger(__name__).warning("could not delete test keys: %s", exc)


@pytest.fixture
def unique_settings(settings_factory: SettingsFactory) -> Settings:
    """``settings_factory()``: Settings with this test's own topics (created), consumer group
    and Redis key prefix, pointing at the running services. See :func:`settings_factory`."""
    return settings_factory()


@pytest.fixture
def free_tcp_port() -> Callable[[], int]:
    """A function returning a free loopback TCP port each call (API, worker metrics, ...)."""
    return free_port


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skip is a failure: the suite must run everything it has."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"
