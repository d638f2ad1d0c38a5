"""Client factories: the options they derive from Settings (no network involved)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.connection import SSLConnection

from nowplaying import clients
from nowplaying.clients import (
    ClientConfigError,
    aiokafka_security_kwargs,
    async_redis_client,
    faust_broker_credentials,
    faust_broker_urls,
    kafka_python_security_kwargs,
    kafka_ssl_context,
    redis_client,
)
from nowplaying.settings import Settings
from tests.support.settings import isolated_settings

SASL = {
    "kafka_security_protocol": "SASL_PLAINTEXT",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "np-app",
    "kafka_sasl_password": "s3cret-sasl",
}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA/client certificate and its key, encrypted with 'keypass'."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "client.pem", folder / "client.key"
    command = (
        "openssl req -x509 -newkey rsa:2048 -days 2 -subj /CN=nowplaying-test "
        f"-keyout {key} -out {cert} -passout pass:keypass"
    )
    subprocess.run(command.split(), check=True, capture_output=True)
    return {"cert": cert, "key": key}


def tls_settings(files: dict[str, Path], protocol: str = "SSL", **extra: Any) -> Settings:
    fields: dict[str, Any] = {
        "kafka_security_protocol": protocol,
        "kafka_ssl_cafile": files["cert"],
        "kafka_ssl_certfile": files["cert"],
        "kafka_ssl_keyfile": files["key"],
        "kafka_ssl_password": "keypass",
    }
    return isolated_settings(**(fields | extra))


def test_plaintext_needs_no_security_options() -> None:
    settings = isolated_settings()
    assert kafka_python_security_kwargs(settings) == {"security_protocol": "PLAINTEXT"}
    assert aiokafka_security_kwargs(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(settings) is None
    assert kafka_ssl_context(settings) is None


def test_sasl_options_carry_the_secret_in_plain_text_for_the_client() -> None:
    settings = isolated_settings(**SASL)
    expected = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "np-app",
        "sasl_plain_password": "s3cret-sasl",
    }
    assert kafka_python_security_kwargs(settings) == expected
    assert aiokafka_security_kwargs(settings) == expected


def test_sasl_mechanism_defaults_to_plain() -> None:
    settings = isolated_settings(**(SASL | {"kafka_sasl_mechanism": None}))
    assert kafka_python_security_kwargs(settings)["sasl_mechanism"] == "PLAIN"


@pytest.mark.parametrize("missing", ["kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_credentials_is_a_config_error(missing: str) -> None:
    settings = isolated_settings(**{k: v for k, v in SASL.items() if k != missing})
    with pytest.raises(ClientConfigError, match="NP_KAFKA_SASL_USERNAME"):
        kafka_python_security_kwargs(settings)
    with pytest.raises(ClientConfigError):
        faust_broker_credentials(settings)


def test_faust_sasl_credentials_hide_the_password() -> None:
    credentials = faust_broker_credentials(isolated_settings(**SASL))
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (credentials.username, credentials.password) == ("np-app", "s3cret-sasl")
    assert "s3cret-sasl" not in repr(credentials)


def test_ssl_context_verifies_and_loads_the_client_certificate(
    tls_files: dict[str, Path],
) -> None:
    context = kafka_ssl_context(tls_settings(tls_files))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert any(
        c["subject"] == ((("commonName", "nowplaying-test"),),) for c in context.get_ca_certs()
    )


def test_ssl_with_a_wrong_key_password_fails_at_start_up(tls_files: dict[str, Path]) -> None:
    with pytest.raises(ssl.SSLError):
        kafka_ssl_context(tls_settings(tls_files, kafka_ssl_password="wrong"))


def test_kafka_python_ssl_options_name_the_files(tls_files: dict[str, Path]) -> None:
    kwargs = kafka_python_security_kwargs(tls_settings(tls_files))
    assert kwargs["security_protocol"] == "SSL"
    assert kwargs["ssl_cafile"] == str(tls_files["cert"])
    assert kwargs["ssl_keyfile"] == str(tls_files["key"])
    assert kwargs["ssl_password"] == "keypass"
    assert kwargs["ssl_check_hostname"] is True
    assert "sasl_mechanism" not in kwargs


def test_aiokafka_and_faust_get_a_context_for_ssl(tls_files: dict[str, Path]) -> None:
    settings = tls_settings(tls_files)
    assert isinstance(aiokafka_security_kwargs(settings)["ssl_context"], ssl.SSLContext)
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL


def test_sasl_ssl_combines_both(tls_files: dict[str, Path]) -> None:
    settings = tls_settings(
        tls_files, "SASL_SSL", **{k: v for k, v in SASL.items() if k != "kafka_security_protocol"}
    )
    kwargs = aiokafka_security_kwargs(settings)
    assert kwargs["sasl_plain_username"] == "np-app"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL


def test_faust_broker_urls_one_per_server() -> None:
    settings = isolated_settings(kafka_bootstrap_servers="k1:9092,k2:9093")
    assert faust_broker_urls(settings) == ["kafka://k1:9092", "kafka://k2:9093"]


def test_redis_client_takes_credentials_from_settings_and_hides_them() -> None:
    settings = isolated_settings(
        redis_url="redis://10.1.2.3:7000/2", redis_username="np", redis_password="redis-s3cret"
    )
    client = redis_client(settings, decode_responses=True)
    assert isinstance(client, Redis)
    options = client.connection_pool.connection_kwargs
    assert (options["host"], options["port"], options["db"]) == ("10.1.2.3", 7000, 2)
    assert (options["username"], options["password"]) == ("np", "redis-s3cret")
    assert options["decode_responses"] is True
    assert options["socket_connect_timeout"] > 0
    assert "redis-s3cret" not in repr(client)


def test_rediss_url_uses_tls_with_the_ca_bundle(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = isolated_settings(redis_url="rediss://cache:6380/0", redis_ssl_ca_certs=ca)
    client = redis_client(settings)
    assert isinstance(client, Redis)
    assert client.connection_pool.connection_class is SSLConnection
    assert client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(ca)


def test_ca_bundle_is_not_passed_to_a_plain_connection(tmp_path: Path) -> None:
    client = redis_client(isolated_settings(redis_ssl_ca_certs=tmp_path / "ca.pem"))
    assert isinstance(client, Redis)
    assert "ssl_ca_certs" not in client.connection_pool.connection_kwargs


def test_cluster_setting_builds_a_cluster_client(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class RecordingCluster:
        @classmethod
        def from_url(cls, url: str, **kwargs: Any) -> RecordingCluster:
            seen.update(kwargs, url=url)
            return cls()

    monkeypatch.setattr(clients, "RedisCluster", RecordingCluster)
    settings = isolated_settings(
        redis_url="redis://node-1:7000/0", redis_cluster=True, redis_password="pw"
    )
    assert isinstance(redis_client(settings), RecordingCluster)
    assert seen["url"] == "redis://node-1:7000/0"
    assert seen["password"] == "pw"


def test_async_clients_match_the_sync_ones() -> None:
    single = async_redis_client(isolated_settings(redis_password="pw"))
    assert type(single) is AsyncRedis
    assert single.connection_pool.connection_kwargs["password"] == "pw"
    cluster = async_redis_client(
        isolated_settings(redis_url="redis://node-1:7000/0", redis_cluster=True)
    )
    assert type(cluster) is AsyncRedisCluster
