"""Credentials for a private Kafka broker that requires SASL: SCRAM-SHA-256/512 and PLAIN on
one SASL_PLAINTEXT listener, SCRAM users created at format time
(``kafka-storage format --add-scram``).

The SCRAM users and the inter-broker ``admin`` are :class:`devtools.services.KafkaBroker`'s
``scram_users``; PLAIN is added through ``extra_properties`` with its own JAAS user list, so
one broker checks both mechanisms. Start it with the ``private_kafka`` fixture::

    creds = SaslCredentials()
    broker = private_kafka(scram_users=creds.scram_users, extra_properties=plain_properties(creds))
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import SecretStr

from devtools.services import SCRAM_ADMIN_USER, SCRAM_MECHANISMS

APP_USER: Final = "nowplaying-app"


@dataclass(frozen=True)
class SaslCredentials:
    """The users of one private SASL broker; passwords are random per broker."""

    app_user: str = APP_USER
    app_password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(12))
    admin_password: str = field(default_factory=lambda: "adm-" + secrets.token_hex(12))

    @property
    def scram_users(self) -> dict[str, str]:
        return {SCRAM_ADMIN_USER: self.admin_password, self.app_user: self.app_password}

    def client_settings(self, mechanism: str, password: str | None = None) -> dict[str, Any]:
        """Settings fields for a client of the app user (``password`` overrides the real one)."""
        return {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": mechanism,
            "kafka_sasl_username": self.app_user,
            "kafka_sasl_password": SecretStr(password or self.app_password),
        }


def plain_properties(creds: SaslCredentials) -> dict[str, str]:
    """Broker properties that add PLAIN next to the SCRAM mechanisms on the SASL listener."""
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{SCRAM_ADMIN_USER}" password="{creds.admin_password}" '
        f'user_{SCRAM_ADMIN_USER}="{creds.admin_password}" '
        f'user_{creds.app_user}="{creds.app_password}";'
    )
    return {
        "sasl.enabled.mechanisms": ",".join((*SCRAM_MECHANISMS, "PLAIN")),
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
    }
