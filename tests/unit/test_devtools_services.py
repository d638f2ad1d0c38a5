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
    KafkaCluster,
    Layout,
    RedisServer,
    ServiceError,
    default_ports,
    fetch_kafka,
    kafka_libs,
    kafka_version,
    min_insync_replicas,
    plan_nodes,
    render_server_properties,
)
from devtools.services.cli import main as services_main
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
    assert props["min.insync.replicas"] == "1"
    assert props["unclean.leader.election.enable"] == "false"
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


# --- the local cluster: node ids, voters, ports, folders ----------------------------------------


def test_default_cluster_ports_put_brokers_and_controllers_in_two_runs() -> None:
    assert default_ports(19092) == ([19092, 19093, 19094], [19192, 19193, 19194])
    assert default_ports(30000, size=5)[1] == [30100, 30101, 30102, 30103, 30104]
    with pytest.raises(ValueError, match="TCP ports"):
        default_ports(65500)
    with pytest.raises(ValueError, match="at least one"):
        default_ports(19092, size=0)


def test_cluster_nodes_get_ids_from_one_their_ports_and_own_folders(tmp_path: Path) -> None:
    nodes = plan_nodes(
        tmp_path / "c", [1001, 1002, 1003], [2001, 2002, 2003], log_dir=tmp_path / "l"
    )
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 1001, 2001),
        (2, 1002, 2002),
        (3, 1003, 2003),
    ]
    assert [n.data_dir for n in nodes] == [tmp_path / "c" / f"node-{i}" for i in (1, 2, 3)]
    assert [n.log_dir for n in nodes] == [tmp_path / "l" / f"node-{i}" for i in (1, 2, 3)]
    without_logs = plan_nodes(tmp_path, [1], [2])
    assert without_logs[0].log_dir == without_logs[0].data_dir == tmp_path / "node-1"


@pytest.mark.parametrize(
    ("ports", "controllers", "match"),
    [
        ([1, 2], [3], "one broker port and one controller port"),
        ([], [], "at least one node"),
        ([1, 2, 3], [4, 5, 1], "must all differ"),
    ],
)
def test_cluster_plans_reject_bad_ports(
    tmp_path: Path, ports: list[int], controllers: list[int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        plan_nodes(tmp_path, ports, controllers)


def test_every_node_of_a_cluster_names_all_three_voters_and_replicates_by_three(
    tmp_path: Path,
) -> None:
    cluster = KafkaCluster(tmp_path, [1001, 1002, 1003], [2001, 2002, 2003])
    props = [properties(node.server_properties()) for node in cluster.nodes]
    voters = "1@127.0.0.1:2001,2@127.0.0.1:2002,3@127.0.0.1:2003"
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert [p["listeners"] for p in props] == [
        f"PLAINTEXT://127.0.0.1:100{i},CONTROLLER://127.0.0.1:200{i}" for i in (1, 2, 3)
    ]
    assert [p["log.dirs"] for p in props] == [
        str(tmp_path / f"node-{i}" / "data") for i in (1, 2, 3)
    ]
    for p in props:
        assert p["process.roles"] == "broker,controller"
        for key in (
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "share.coordinator.state.topic.replication.factor",
        ):
            assert p[key] == "3", key
        for key in (
            "min.insync.replicas",
            "transaction.state.log.min.isr",
            "share.coordinator.state.topic.min.isr",
        ):
            assert p[key] == "2", key
        assert p["unclean.leader.election.enable"] == "false"
    assert cluster.bootstrap == "127.0.0.1:1001,127.0.0.1:1002,127.0.0.1:1003"
    assert cluster.node(2).port == 1002
    with pytest.raises(KeyError):
        cluster.node(4)


def test_min_insync_replicas_follow_the_replication_factor() -> None:
    assert [min_insync_replicas(rf) for rf in (1, 2, 3, 5)] == [1, 2, 2, 2]
    two_nodes = KafkaCluster(Path("/nonexistent"), [1, 2], [3, 4])
    p = properties(two_nodes.nodes[0].server_properties())
    assert (p["default.replication.factor"], p["min.insync.replicas"]) == ("2", "2")


def test_replication_cannot_exceed_the_nodes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="replication_factor 3"):
        render_server_properties(
            port=1, controller_port=2, data_dir=tmp_path, version="4.4.0", replication_factor=3
        )


def test_the_cluster_id_is_made_once_and_kept(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path / "c", [1, 2, 3], [4, 5, 6])
    first = cluster.cluster_id()
    assert (tmp_path / "c" / "cluster.id").read_text(encoding="ascii").strip() == first
    assert KafkaCluster(tmp_path / "c", [1, 2, 3], [4, 5, 6]).cluster_id() == first


def test_a_lost_cluster_id_file_is_recovered_from_a_formatted_node(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, [1, 2, 3], [4, 5, 6])
    meta = cluster.node(2).data_dir / "data" / "meta.properties"
    meta.parent.mkdir(parents=True)
    meta.write_text("version=1\ncluster.id=AbCdEfGhIjKlMnOpQrStUv\nnode.id=2\n", encoding="utf-8")
    assert cluster.cluster_id() == "AbCdEfGhIjKlMnOpQrStUv"


def test_the_layout_places_the_cluster_next_to_the_single_broker(tmp_path: Path) -> None:
    default = Layout.from_env({"NP_STATE_DIR": str(tmp_path)}).kafka_cluster()
    assert [n.port for n in default.nodes] == [19092, 19093, 19094]
    assert [n.controller_port for n in default.nodes] == [19192, 19193, 19194]
    assert [n.data_dir for n in default.nodes] == [
        tmp_path / "kafka-cluster" / f"node-{i}" for i in (1, 2, 3)
    ]
    assert [n.log_file for n in default.nodes] == [
        tmp_path / "log" / "kafka-cluster" / f"node-{i}" / "kafka.log" for i in (1, 2, 3)
    ]
    assert all(n.heap_opts.startswith("-Xms128m -Xmx512m") for n in default.nodes)
    moved = Layout.from_env(
        {"NP_KAFKA_CLUSTER_PORT": "29000", "NP_KAFKA_CLUSTER_HEAP_OPTS": "-Xmx256m"}
    ).kafka_cluster()
    assert moved.bootstrap == "127.0.0.1:29000,127.0.0.1:29001,127.0.0.1:29002"
    assert {n.heap_opts for n in moved.nodes} == {"-Xmx256m"}
    with pytest.raises(ServiceError, match="NP_KAFKA_CLUSTER_PORT"):
        Layout.from_env({"NP_KAFKA_CLUSTER_PORT": "65500"}).kafka_cluster()


def test_cluster_status_names_every_stopped_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("NP_KAFKA_CLUSTER_PORT", "29000")
    assert services_main(["cluster", "status"]) == 3
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["node 1", "node 2", "node 3"]
    assert all(line.endswith("stopped") for line in out)


@pytest.mark.parametrize("argv", [["cluster"], ["cluster", "kafka"], ["up", "status"]])
def test_the_command_line_rejects_mixed_up_targets(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        services_main(argv)
    assert exited.value.code == 2
