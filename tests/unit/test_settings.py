"""Settings: NP_ environment prefix, defaults, immutability, secrets, validation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from nowplaying.settings import Settings
from tests.support.settings import isolated_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No NP_* variables from the developer's shell, and no .env in the working folder."""
    for name in list(os.environ):
        if name.startswith("NP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def test_defaults_point_at_the_local_services() -> None:
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_servers == ["127.0.0.1:9092"]
    assert settings.redis_url == "redis://127.0.0.1:6380/0"
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.redis_cluster is False
    assert settings.model_dir == Path("var/models")
    assert (settings.api_port, settings.worker_metrics_port) == (8000, 8001)
    assert settings.topic_play_events == "play-events"
    assert settings.topic_recommendations == "now-playing-recommendations"
    assert settings.topic_dead_letters == "play-events-dlq"


def test_environment_variables_use_the_np_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NP_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092 ,")
    monkeypatch.setenv("NP_TOP_K", "25")
    monkeypatch.setenv("NP_REDIS_CLUSTER", "true")
    monkeypatch.setenv("NP_MODEL_DIR", "/models")
    monkeypatch.setenv("TOP_K", "99")  # without the prefix: ignored
    settings = Settings()
    assert settings.kafka_servers == ["k1:9092", "k2:9092"]
    assert settings.top_k == 25
    assert settings.redis_cluster is True
    assert settings.model_dir == Path("/models")


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NP_TOP_K", "25")
    assert Settings(top_k=5).top_k == 5


def test_dotenv_file_in_the_working_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NP_CANDIDATES=77\nNP_UNKNOWN_THING=1\n", encoding="utf-8")
    assert Settings().candidates == 77


def test_unknown_np_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NP_NOT_A_SETTING", "x")
    assert Settings().top_k == 10


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.top_k = 3  # type: ignore[misc]


def test_secrets_are_hidden_in_repr_str_and_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NP_KAFKA_SASL_PASSWORD", "kafka-hunter2")
    settings = Settings(redis_password=SecretStr("redis-hunter2"), kafka_ssl_password="ssl-pw-7")
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "kafka-hunter2" not in text
        assert "redis-hunter2" not in text
        assert "ssl-pw-7" not in text
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "kafka-hunter2"
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "redis-hunter2"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_k", "ten"),
        ("top_k", 0),
        ("top_k", 201),
        ("topic_partitions", 0),
        ("api_port", 70000),
        ("kafka_security_protocol", "TLS"),
        ("kafka_sasl_mechanism", "GSSAPI"),
        ("log_level", "TRACE"),
        ("batch_within_seconds", -0.001),
        ("max_event_bytes", 100),
        ("redis_cluster", "perhaps"),
    ],
)
def test_invalid_values_are_rejected_naming_the_field(field: str, value: Any) -> None:
    fields: dict[str, Any] = {field: value}
    with pytest.raises(ValidationError) as info:
        Settings(**fields)
    assert field in str(info.value)


def test_invalid_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NP_API_PORT", "http")
    with pytest.raises(ValidationError, match="api_port"):
        Settings()


def test_isolated_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NP_TOP_K", "25")
    monkeypatch.setenv("NP_REDIS_URL", "redis://elsewhere:1/0")
    settings = isolated_settings(candidates=50)
    assert type(settings) is Settings
    assert (settings.top_k, settings.candidates) == (10, 50)
    assert settings.redis_url == "redis://127.0.0.1:6380/0"
