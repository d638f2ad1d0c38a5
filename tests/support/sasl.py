"""A private Kafka broker that requires SASL: SCRAM-SHA-256/512 and PLAIN on one
SASL_PLAINTEXT listener, users created at format time (``kafka-storage format --add-scram``).

The SCRAM users and the inter-broker ``admin`` come from
:class:`nowplaying.devservices.KafkaBroker` (``scram_users``); PLAIN is added here through
``extra_properties`` with its own JAAS user list, so the same broker checks both mechanisms.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from nowplaying.devservices import SCRAM_ADMIN_USER, SCRAM_MECHANISMS, KafkaBroker

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


def sasl_broker(
    data_dir: Path, port: int, controller_port: int, creds: SaslCredentials
) -> KafkaBroker:
    return KafkaBroker(
        port,
        controller_port,
        data_dir,
        scram_users=creds.scram_users,
        extra_properties=plain_properties(creds),
        heap_opts="-Xms128m -Xmx384m",
    )
