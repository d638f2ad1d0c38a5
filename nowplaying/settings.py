"""The one settings object of nowplaying.

Every process builds it once in its entry point (``Settings()`` reads ``NP_*`` variables and an
optional ``.env`` file) and passes it down. Nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Runtime configuration. Field ``x`` is set by the environment variable ``NP_X``."""

    model_config = SettingsConfigDict(
        env_prefix="NP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signs the brokers' certificates."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    kafka_ssl_password: SecretStr | None = Field(
        None, description="Password of the client private key."
    )

    topic_play_events: str = Field(
        "play-events", description="Input topic of play events (key: user_id)."
    )
    topic_recommendations: str = Field(
        "now-playing-recommendations", description="Output topic of Now Playing lists."
    )
    topic_dead_letters: str = Field(
        "play-events-dlq", description="Dead-letter topic for invalid messages."
    )
    topic_outcomes: str = Field(
        "now-playing-outcomes",
        description="Output topic of exposure outcomes: what followed each list (key: user_id).",
    )
    topic_partitions: int = Field(8, ge=1, description="Partitions for the topics we create.")
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics we create (3 on a cluster)."
    )
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of the topics we create: replicas that must have a "
        "record before an acks=all write succeeds. Default min(2, replication factor); at "
        "most the replication factor.",
    )
    consumer_group: str = Field(
        "nowplaying-worker", description="Kafka consumer group (and Faust app id) of the workers."
    )

    # --- Redis ---------------------------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6380/0",
        description="redis:// or rediss:// URL; with redis_cluster=true any node of the cluster.",
    )
    redis_cluster: bool = Field(False, description="Use a Redis Cluster client.")
    redis_username: str | None = Field(None, description="Redis ACL user.")
    redis_password: SecretStr | None = Field(None, description="Redis password.")
    redis_ssl_ca_certs: Path | None = Field(None, description="CA bundle for rediss:// URLs.")
    redis_key_prefix: str = Field(
        "np",
        pattern=r"^[^{}]*$",
        description="Prefix of every Redis key (no braces: keys carry Redis Cluster hash tags).",
    )

    # --- Models and data -----------------------------------------------------------------
    model_dir: Path = Field(
        Path("var/models"),
        description="Model registry folder: one sub-folder per version and a 'latest' pointer.",
    )
    model_version: str | None = Field(
        None, description="Version to serve; default is the registry's 'latest' pointer."
    )
    model_variants: str = Field(
        "",
        description="A/B test: 'name=version:weight,...' (version may be 'latest'); users are "
        "split by a stable hash of their id. Empty: one model for everyone.",
    )
    experiment_salt: str = Field(
        "ab-1", description="Salt of the A/B assignment hash; a new salt reshuffles users."
    )
    model_reload_seconds: float = Field(
        2.0,
        ge=0,
        description="How often a running worker checks the registry's 'latest' pointer and "
        "'variants' file, and swaps in what they name (checked first). 0: never (start only).",
    )
    data_dir: Path = Field(
        Path("../shared/data"), description="Folder holding the listening-session data sets."
    )

    # --- Stream processing ---------------------------------------------------------------
    session_ttl_seconds: int = Field(1800, ge=1, description="Session inactivity TTL in Redis.")
    max_session_events: int = Field(1000, ge=2, description="Events kept per session in Redis.")
    session_cache_sessions: int = Field(
        20000,
        ge=1,
        description="Sessions whose log and state a worker keeps in memory (LRU); bounds its RSS.",
    )
    top_k: int = Field(10, ge=1, le=200, description="Length of each Now Playing list.")
    candidates: int = Field(100, ge=1, description="Candidates ranked per track start.")
    auto_steering: bool = Field(
        False,
        description="Steer a session's list automatically when it is going wrong (two skips in "
        "a row, or a high predicted skip risk): away from the skipped tracks, towards a lower "
        "skip risk (the model version's skip.onnx; lists labelled 'auto'). Off: the offline "
        "evaluation did not show it helps (models/README.md).",
    )
    batch_max_events: int = Field(200, ge=1, description="Most events processed as one batch.")
    batch_within_seconds: float = Field(
        0.01,
        ge=0,
        description="While the worker is behind (its consumer has fetched more records than "
        "reached the batch), how long at most to wait for them to fill a batch (0: never; a "
        "batch is then what arrived while the last one was processed).",
    )
    max_event_bytes: int = Field(16384, ge=256, description="Larger messages are dead-lettered.")
    max_clock_skew_seconds: int = Field(
        86400, ge=0, description="Events further than this in the future are dead-lettered."
    )
    ort_intra_op_threads: int = Field(1, ge=0, description="onnxruntime threads per call.")
    retry_initial_seconds: float = Field(
        0.1, gt=0, description="First back-off after a failing Redis or Kafka call."
    )
    retry_max_seconds: float = Field(
        5.0, gt=0, description="Longest back-off; retries go on until the dependency answers."
    )
    worker_session_timeout_seconds: float = Field(
        30.0,
        ge=6.0,
        description="Kafka consumer-group session timeout: how soon a dead worker's partitions "
        "move to the others.",
    )
    worker_lag_interval_seconds: float = Field(
        5.0, gt=0, description="How often the worker updates the consumer-lag gauge."
    )

    # --- HTTP ----------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Interface the API binds.")
    api_port: int = Field(
        8000, ge=0, le=65535, description="Port of the HTTP API and the live page."
    )
    worker_metrics_port: int = Field(
        8001, ge=0, le=65535, description="Worker HTTP port: /metrics, /healthz, /readyz."
    )
    worker_metrics_host: str = Field("127.0.0.1", description="Interface the worker binds.")
    worker_web_port: int = Field(6066, ge=0, le=65535, description="Faust's own web port.")
    api_live_poll_seconds: float = Field(
        0.4, gt=0, le=10, description="How often each live-page stream polls Redis for changes."
    )
    api_auth: Literal["on", "off"] = Field(
        "on",
        description="on: every data route needs a bearer token from NP_API_TOKENS. off: the API "
        "is open to anyone who reaches it (logged as a warning; refused on a non-loopback "
        "NP_API_HOST unless NP_API_AUTH_OFF_ALLOW_PUBLIC=true).",
    )
    api_auth_off_allow_public: bool = Field(
        False,
        description="With NP_API_AUTH=off, allow binding a non-loopback interface anyway.",
    )
    api_tokens: SecretStr | None = Field(
        None,
        description="Accepted bearer tokens as SHA-256 hashes, never the tokens: comma-separated "
        "'name:scopes:sha256hex' entries, scopes 'read', 'steer' or 'read+steer'. "
        "`nowplaying api token create` mints a token and prints its entry.",
    )
    api_auth_probes: Literal["open", "read"] = Field(
        "open",
        description="/readyz and /metrics: open (Prometheus and orchestrators scrape them "
        "without a token) or read (they need a read token). /healthz is always open.",
    )
    api_stream_token_key: SecretStr | None = Field(
        None,
        description="HMAC key (16+ characters) signing the live page's stream tokens; unset: "
        "random per process, so with several API replicas set the same key on each.",
    )
    api_stream_token_seconds: int = Field(
        60, ge=5, le=3600, description="Lifetime of a live-page stream token."
    )
    api_steer_rate_per_second: float = Field(
        5.0, gt=0, description="Steering requests per second allowed per token (token bucket)."
    )
    api_steer_burst: int = Field(
        20, ge=1, description="Steering requests a token may make at once before the rate applies."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of every process."
    )

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        wanted, replicas = self.topic_min_insync_replicas, self.topic_replication_factor
        if wanted is not None and wanted > replicas:
            raise ValueError(
                f"topic_min_insync_replicas={wanted} exceeds topic_replication_factor="
                f"{replicas}: no acks=all write could ever succeed"
            )
        return self

    @property
    def min_insync_replicas(self) -> int:
        """``topic_min_insync_replicas``, or min(2, replication factor) when unset."""
        if self.topic_min_insync_replicas is not None:
            return self.topic_min_insync_replicas
        return min(2, self.topic_replication_factor)

    @property
    def kafka_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]


def settings_table_markdown() -> str:
    """The README's configuration table, generated from the fields above."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None else f"`{default}`"
        if isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        secret = " (secret)" if "SecretStr" in str(info.annotation) else ""
        rows.append(f"| `NP_{name.upper()}` | {shown} | {info.description or ''}{secret} |")
    return "\n".join(rows)
