"""Running securely: a PRIVATE Kafka broker that requires SASL (SCRAM-SHA-256/512 and PLAIN on a
SASL_PLAINTEXT listener, users created at format time) and a PRIVATE Redis that requires an ACL
user and password.

* With credentials (SCRAM-SHA-512, then PLAIN) the worker's Faust consumer and producer and the
  test's kafka-python producer (the replay path) connect; a replay passes the invariant.
* With a wrong password, or none, the broker refuses the worker: nothing is consumed.
* A wrong Redis password keeps the worker not ready.
* No secret ever shows: every run logs at DEBUG, and its log, /readyz and /metrics are searched
  for every password in play (the real ones and the wrong ones).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis import Redis

from nowplaying.clients import kafka_admin
from nowplaying.settings import Settings
from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
from tests.support.faults import (
    assert_healthy,
    print_counts,
    readiness,
    starts_of,
    triggers_of,
    wait_until,
)
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    produce,
    real_session_events,
)
from tests.support.sasl import SaslCredentials, plain_properties
from tests.support.services import (
    KafkaBroker,
    RedisServer,
    private_kafka_broker,
    private_redis_server,
)

pytestmark = pytest.mark.slow

REDIS_USER = "np-worker"


class RedisAcl:
    """The private Redis's users: ``np-worker`` (all keys and commands) and the default user,
    whose password is set so that unauthenticated clients are refused."""

    def __init__(self) -> None:
        self.worker_password = "redis-" + secrets.token_hex(12)
        self.default_password = "redis-admin-" + secrets.token_hex(12)


@dataclass(frozen=True)
class Secrets:
    """Every credential of this module's private services."""

    kafka: SaslCredentials = field(default_factory=SaslCredentials)
    redis: RedisAcl = field(default_factory=RedisAcl)

    def values(self, *extra: str) -> list[str]:
        return [
            self.kafka.app_password,
            self.kafka.admin_password,
            self.redis.worker_password,
            self.redis.default_password,
            *extra,
        ]


@pytest.fixture(scope="module")
def creds() -> Secrets:
    return Secrets()


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory, creds: Secrets) -> Iterator[KafkaBroker]:
    broker = private_kafka_broker(
        tmp_path_factory.mktemp("sasl-kafka"),
        scram_users=creds.kafka.scram_users,
        extra_properties=plain_properties(creds.kafka),
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory, creds: Secrets) -> Iterator[RedisServer]:
    acl = creds.redis
    server = private_redis_server(tmp_path_factory.mktemp("acl-redis"))
    server.start()
    try:
        client = Redis(host="127.0.0.1", port=server.port)
        client.acl_setuser(
            REDIS_USER,
            enabled=True,
            passwords=[f"+{acl.worker_password}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        client.config_set("requirepass", acl.default_password)
        client.close()
        yield server
    finally:
        server.kill()


@pytest.fixture
def secure_settings(
    settings_factory: SettingsFactory,
    sasl_broker: KafkaBroker,
    acl_redis: RedisServer,
    creds: Secrets,
    free_tcp_port: Callable[[], int],
) -> Callable[..., Settings]:
    """Settings for the SASL broker and the ACL Redis (topics created with the app user)."""

    def make(mechanism: str = "SCRAM-SHA-512", **overrides: Any) -> Settings:
        fields: dict[str, Any] = {
            "kafka_bootstrap_servers": sasl_broker.bootstrap,
            **creds.kafka.client_settings(mechanism),
            "redis_url": acl_redis.url,
            "redis_username": REDIS_USER,
            "redis_password": SecretStr(creds.redis.worker_password),
            "model_dir": shared_small_model(),
            "worker_metrics_port": free_tcp_port(),
            "log_level": "DEBUG",
            "retry_max_seconds": 1.0,
        }
        return settings_factory(**(fields | overrides))

    return make


def leaked(texts: list[str], secret_values: list[str]) -> list[str]:
    """The secrets that appear in any of the texts (a short excerpt around each)."""
    found = []
    for text in texts:
        for value in secret_values:
            at = text.find(value)
            if at >= 0:
                found.append(text[max(0, at - 120) : at + len(value)].replace(value, "<SECRET>"))
    return found


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_worker_and_producer_connect_with_sasl_credentials_and_log_no_secret(
    mechanism: str,
    secure_settings: Callable[..., Settings],
    creds: Secrets,
    tmp_path: Path,
) -> None:
    settings = secure_settings(mechanism)
    sessions = real_session_events(settings, 15, skip=2200)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        assert_healthy(worker)
        sent, _ = produce(settings, interleave(sessions, 15, seed=17))  # kafka-python, SASL
        with TopicReader(settings, settings.topic_recommendations) as recs:
            recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=90)
        pages = [worker.get("/readyz")[1], worker.metrics()]
    report = check_invariant(settings, sent, [], recs.records, [])
    log = worker.log_text()
    print_counts(f"SASL {mechanism} + Redis ACL", report, produced=len(sent), log_bytes=len(log))
    assert f"Authenticated as {creds.kafka.app_user} via {mechanism}" in log
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))
    assert leaked([log, *pages, repr(settings), str(settings)], creds.values()) == []


@pytest.mark.parametrize("how", ["wrong password", "no credentials"])
def test_broker_refuses_the_worker_without_valid_credentials(
    how: str,
    secure_settings: Callable[..., Settings],
    creds: Secrets,
    tmp_path: Path,
) -> None:
    settings = secure_settings()  # topics created with the real credentials
    wrong = "wrong-" + secrets.token_hex(8)
    if how == "wrong password":
        bad = settings.model_copy(update={"kafka_sasl_password": SecretStr(wrong)})
    else:
        bad = settings.model_copy(
            update={
                "kafka_security_protocol": "PLAINTEXT",
                "kafka_sasl_mechanism": None,
                "kafka_sasl_username": None,
                "kafka_sasl_password": None,
            }
        )
    produce(settings, real_session_events(settings, 2, skip=2300)[0])
    worker = WorkerProcess(bad, tmp_path / "worker.log", start_timeout=45)
    try:
        worker.start()
        # It came up: it must not get anywhere with the broker.
        assert not wait_until(lambda: readiness(worker)[0] == 200 and consumed(worker) > 0, 20)
    except RuntimeError:
        pass  # it exited while starting: the broker refused it
    finally:
        if worker.running:
            worker.terminate()
    log = worker.log_text()
    with TopicReader(settings, settings.topic_recommendations) as recs:
        lists = recs.read_all(timeout=3)
    print(
        f"\n[broker refuses the worker: {how}] exit code {worker.proc and worker.proc.returncode}"
    )
    assert lists == []
    assert group_offsets(settings) == {}  # the worker never joined and committed
    if how == "wrong password":
        assert "Authentication failed" in log, log[-2000:]
    assert leaked([log], creds.values(wrong)) == []


def consumed(worker: WorkerProcess) -> float:
    return worker.metric_value("nowplaying_events_total")


def group_offsets(settings: Settings) -> dict[int, int]:
    admin = kafka_admin(settings)
    try:
        groups = admin.list_group_offsets({settings.consumer_group: None})
    finally:
        admin.close()
    return {tp.partition: m.offset for tp, m in groups[settings.consumer_group].items()}


def test_wrong_redis_password_keeps_the_worker_not_ready_and_is_not_logged(
    secure_settings: Callable[..., Settings],
    creds: Secrets,
    tmp_path: Path,
) -> None:
    wrong = "wrong-redis-" + secrets.token_hex(8)
    settings = secure_settings()
    bad = settings.model_copy(update={"redis_password": SecretStr(wrong)})
    with WorkerProcess(bad, tmp_path / "worker.log") as worker:
        assert wait_until(lambda: readiness(worker)[0] == 503, 20)
        status, body = readiness(worker)
        pages = [str(body), worker.metrics()]
    log = worker.log_text()
    print(f"\n[wrong Redis password] /readyz {status}: {body.get('failing')}")
    assert "redis" in body["failing"]
    assert leaked([log, *pages], creds.values(wrong)) == []
