"""Client factories: Kafka and Redis connection options built from :class:`Settings`.

Entry points and start-up hooks call these once and inject the clients they make, so tests
can pass real or fake ones. Secrets are read from ``SecretStr`` only here, at the moment a
client needs them, and never logged: the returned option dicts hold them in plain text, so do
not log those dicts either.

* kafka-python (admin, producers): :func:`kafka_python_security_kwargs`, :func:`kafka_admin`,
  :func:`kafka_producer`.
* aiokafka: :func:`aiokafka_security_kwargs`.
* Faust: :func:`faust_broker_urls` and :func:`faust_broker_credentials` (``faust.App(...,
  broker=..., broker_credentials=...)``).
* Redis: :func:`redis_client`, :func:`async_redis_client` (a cluster client when
  ``settings.redis_cluster``).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import SecretStr
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from nowplaying.settings import Settings

#: The asyncio Redis client of either kind (:func:`async_redis_client`).
AsyncRedisClient: TypeAlias = AsyncRedis | AsyncRedisCluster

if TYPE_CHECKING:
    from faust.auth import Credentials
    from kafka import KafkaAdminClient, KafkaProducer

SSL_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class ClientConfigError(ValueError):
    """The settings do not describe a usable connection (e.g. SASL without a username)."""


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _path(value: object | None) -> str | None:
    return str(value) if value is not None else None


# --- Kafka ------------------------------------------------------------------------------------


def _sasl_login(settings: Settings) -> tuple[str, str, str]:
    """(mechanism, username, password) for a SASL protocol, or a ClientConfigError."""
    if settings.kafka_sasl_username is None or settings.kafka_sasl_password is None:
        raise ClientConfigError(
            f"security protocol {settings.kafka_security_protocol} needs "
            "NP_KAFKA_SASL_USERNAME and NP_KAFKA_SASL_PASSWORD"
        )
    mechanism = settings.kafka_sasl_mechanism or "PLAIN"
    return mechanism, settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value()


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context for SSL / SASL_SSL (CA, optional client certificate), else None."""
    if settings.kafka_security_protocol not in SSL_PROTOCOLS:
        return None
    context = ssl.create_default_context(cafile=_path(settings.kafka_ssl_cafile))
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            certfile=str(settings.kafka_ssl_certfile),
            keyfile=_path(settings.kafka_ssl_keyfile),
            password=_secret(settings.kafka_ssl_password),
        )
    return context


def _protocol_and_sasl_kwargs(settings: Settings) -> dict[str, Any]:
    """``security_protocol`` and the SASL login options, spelled alike by kafka-python/aiokafka."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in SASL_PROTOCOLS:
        mechanism, username, password = _sasl_login(settings)
        kwargs |= {
            "sasl_mechanism": mechanism,
            "sasl_plain_username": username,
            "sasl_plain_password": password,
        }
    return kwargs


def kafka_python_security_kwargs(settings: Settings) -> dict[str, Any]:
    """Security options for kafka-python's ``KafkaProducer`` / ``KafkaConsumer`` / admin."""
    protocol = settings.kafka_security_protocol
    kwargs = _protocol_and_sasl_kwargs(settings)
    if protocol in SSL_PROTOCOLS:
        kwargs |= {
            "ssl_check_hostname": True,
            "ssl_cafile": _path(settings.kafka_ssl_cafile),
            "ssl_certfile": _path(settings.kafka_ssl_certfile),
            "ssl_keyfile": _path(settings.kafka_ssl_keyfile),
            "ssl_password": _secret(settings.kafka_ssl_password),
        }
    return kwargs


def aiokafka_security_kwargs(settings: Settings) -> dict[str, Any]:
    """Security options for aiokafka's ``AIOKafkaProducer`` / ``AIOKafkaConsumer``."""
    protocol = settings.kafka_security_protocol
    kwargs = _protocol_and_sasl_kwargs(settings)
    if protocol in SSL_PROTOCOLS:
        kwargs["ssl_context"] = kafka_ssl_context(settings)
    return kwargs


def faust_broker_urls(settings: Settings) -> list[str]:
    """Faust's ``broker`` argument: one ``kafka://host:port`` URL per bootstrap server."""
    return [f"kafka://{server}" for server in settings.kafka_servers]


def faust_broker_credentials(settings: Settings) -> Credentials | None:
    """Faust's ``broker_credentials``: SASL and/or TLS credentials, None for PLAINTEXT."""
    import faust  # noqa: PLC0415 - Faust is heavy; only the worker needs it

    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings)
    if protocol in SASL_PROTOCOLS:
        mechanism, username, password = _sasl_login(settings)
        return faust.SASLCredentials(
            username=username, password=password, mechanism=mechanism, ssl_context=context
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


def kafka_admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    """A kafka-python admin client for the configured cluster (the caller closes it)."""
    from kafka import KafkaAdminClient  # noqa: PLC0415

    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers,
        "client_id": "nowplaying-admin",
        "request_timeout_ms": 30000,
        **kafka_python_security_kwargs(settings),
        **overrides,
    }
    return KafkaAdminClient(**options)


def kafka_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer (the caller closes it): ``acks=all`` (a record is acknowledged
    once ``min.insync.replicas`` brokers have it) and idempotent (a retried send is written
    once, and retries cannot reorder a partition's records)."""
    from kafka import KafkaProducer  # noqa: PLC0415

    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers,
        "client_id": "nowplaying-producer",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        **kafka_python_security_kwargs(settings),
        **overrides,
    }
    return KafkaProducer(**options)


# --- Redis ------------------------------------------------------------------------------------


def redis_options(settings: Settings) -> dict[str, Any]:
    """Options common to every Redis client: credentials, TLS trust, timeouts.

    Prefer ``redis_username`` / ``redis_password`` to credentials inside the URL (the password
    then stays a secret); when a URL does carry them, redis-py lets the URL's win. The CA
    bundle applies to ``rediss://`` URLs.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": 10.0,
        "health_check_interval": 30,
    }
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_ssl_ca_certs is not None and settings.redis_url.startswith("rediss://"):
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_certs)
    return options


def redis_client(settings: Settings, *, decode_responses: bool = False) -> Redis | RedisCluster:
    """A synchronous redis-py client; a ``RedisCluster`` when ``settings.redis_cluster``.

    TLS comes from a ``rediss://`` URL (``redis_ssl_ca_certs`` names the CA bundle).
    """
    options = redis_options(settings) | {"decode_responses": decode_responses}
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    return Redis.from_url(settings.redis_url, **options)


def async_redis_client(settings: Settings, *, decode_responses: bool = False) -> AsyncRedisClient:
    """The asyncio twin of :func:`redis_client` (``redis.asyncio``)."""
    options = redis_options(settings) | {"decode_responses": decode_responses}
    if settings.redis_cluster:
        return AsyncRedisCluster.from_url(settings.redis_url, **options)
    return AsyncRedis.from_url(settings.redis_url, **options)
