"""Where the default instances (``make up``) live: ports and folders, from the environment.

``NP_KAFKA_PORT`` (9092), ``NP_KAFKA_CONTROLLER_PORT`` (9093), ``NP_REDIS_PORT`` (6380),
``NP_STATE_DIR`` (``var``: ``kafka/``, ``redis/``, ``log/``), ``NP_CACHE_DIR`` (``.cache``: the
broker's jars); folders default to the repository's, whatever the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.paths import CACHE_DIR, VAR_DIR
from devtools.services.kafka_broker import KafkaBroker
from devtools.services.processes import ServiceError
from devtools.services.redis_server import RedisServer


@dataclass(frozen=True, slots=True)
class Layout:
    """The default instances' ports and folders."""

    kafka_port: int
    kafka_controller_port: int
    redis_port: int
    state_dir: Path
    cache_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Layout:
        env = os.environ if env is None else env
        return cls(
            kafka_port=_port(env, "NP_KAFKA_PORT", 9092),
            kafka_controller_port=_port(env, "NP_KAFKA_CONTROLLER_PORT", 9093),
            redis_port=_port(env, "NP_REDIS_PORT", 6380),
            state_dir=Path(env.get("NP_STATE_DIR") or VAR_DIR).absolute(),
            cache_dir=Path(env.get("NP_CACHE_DIR") or CACHE_DIR).absolute(),
        )

    def kafka(self) -> KafkaBroker:
        return KafkaBroker(
            self.kafka_port,
            self.kafka_controller_port,
            self.state_dir / "kafka",
            log_dir=self.state_dir / "log",
            cache_dir=self.cache_dir,
        )

    def redis(self) -> RedisServer:
        return RedisServer(
            self.redis_port, self.state_dir / "redis", log_dir=self.state_dir / "log"
        )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ServiceError(f"{name}={raw!r} is not a TCP port")
    return int(raw)
