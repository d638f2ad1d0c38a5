"""The local-services tooling: configuration it writes and decisions it makes, without Java."""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path

import pytest

from devtools.paths import REPO_ROOT
from devtools.services import (
    KafkaBroker,
    Layout,
    RedisServer,
    ServiceError,
    fetch_kafka,
    kafka_libs,
    kafka_version,
    render_server_properties,
)
from devtools.services.kafka_config import new_cluster_id


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def test_pinned_kafka_version_is_4x() -> None:
    assert re.fullmatch(r"4\.\d+\.\d+", kafka_version())


def test_server_properties_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    props = properties(
        render_server_properties(
            port=19092, controller_port=19093, data_dir=tmp_path / "data", version="4.4.0"
        )
    )
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"
    assert "sasl.enabled.mechanisms" not in props


def test_scram_users_switch_the_client_listener_to_sasl(tmp_path: Path) -> None:
    props = properties(
        render_server_properties(
            port=1,
            controller_port=2,
            data_dir=tmp_path,
            version="4.4.0",
            scram_users={"admin": "adm-pw", "app": "app-pw"},
            extra_properties={"log.retention.hours": "1"},
        )
    )
    assert props["listeners"].startswith("SASL_PLAINTEXT://127.0.0.1:1,")
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    jaas = props["listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"]
    assert 'username="admin" password="adm-pw"' in jaas
    assert "app-pw" not in jaas  # only the inter-broker login is in the broker's config
    assert props["log.retention.hours"] == "1"


def test_a_node_of_a_cluster_names_every_voter(tmp_path: Path) -> None:
    props = properties(
        render_server_properties(
            port=19094,
            controller_port=19095,
            data_dir=tmp_path,
            version="4.4.0",
            node_id=2,
            quorum_voters={1: 19093, 2: 19095, 3: 19097},
        )
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"


def test_the_voters_must_hold_the_node_itself(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node 2"):
        render_server_properties(
            port=1,
            controller_port=2,
            data_dir=tmp_path,
            version="4.4.0",
            node_id=2,
            quorum_voters={1: 3},
        )


def test_the_repository_root_holds_the_broker_pin() -> None:
    assert (REPO_ROOT / "infra" / "kafka" / "pom.xml").is_file()
    assert (REPO_ROOT / "pyproject.toml").is_file()


def test_scram_users_must_include_the_inter_broker_admin(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="admin"):
        KafkaBroker(1, 2, tmp_path, scram_users={"app": "pw"})


def test_cluster_ids_have_kafkas_format() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_layout_defaults_and_overrides(tmp_path: Path) -> None:
    default = Layout.from_env({})
    assert (default.kafka_port, default.kafka_controller_port, default.redis_port) == (
        9092,
        9093,
        6380,
    )
    assert default.state_dir == REPO_ROOT / "var"
    assert default.cache_dir == REPO_ROOT / ".cache"
    custom = Layout.from_env(
        {
            "NP_KAFKA_PORT": "29092",
            "NP_KAFKA_CONTROLLER_PORT": "29093",
            "NP_REDIS_PORT": "26380",
            "NP_STATE_DIR": str(tmp_path),
        }
    )
    broker, redis = custom.kafka(), custom.redis()
    assert broker.bootstrap == "127.0.0.1:29092"
    assert broker.data_dir == tmp_path / "kafka"
    assert broker.log_file == tmp_path / "log" / "kafka.log"
    assert redis.url == "redis://127.0.0.1:26380/0"
    assert redis.data_dir == tmp_path / "redis"


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_layout_rejects_bad_ports(value: str) -> None:
    with pytest.raises(ServiceError, match="NP_REDIS_PORT"):
        Layout.from_env({"NP_REDIS_PORT": value})


def test_cached_jars_are_not_fetched_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = kafka_libs(tmp_path, kafka_version())
    libs.mkdir(parents=True)
    (libs / ".complete").write_text("x", encoding="utf-8")
    monkeypatch.setattr(shutil, "which", lambda _: None)  # no mvn at all
    said: list[str] = []
    assert fetch_kafka(tmp_path, say=said.append) == libs
    assert said == []


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(ServiceError, match="mvn"):
        fetch_kafka(tmp_path)


def test_a_stale_pid_file_is_not_a_running_service(tmp_path: Path) -> None:
    broker = KafkaBroker(1, 2, tmp_path)
    tmp_path.mkdir(exist_ok=True)
    broker.pid_file.write_text(f"{os.getpid()}\n", encoding="ascii")  # alive, but not Kafka
    assert not broker.is_running()
    redis = RedisServer(3, tmp_path)
    redis.pid_file.write_text("999999999\n", encoding="ascii")  # no such process
    assert not redis.is_running()
