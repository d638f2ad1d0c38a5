"""docker-compose.yml, the Dockerfile and the Prometheus config stay consistent with the code.

No Docker engine runs these tests: they read the files and check them against Settings, the
CLI and the pinned broker version.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.services import kafka_version
from nowplaying.cli import build_parser
from nowplaying.settings import Settings
from tests.support.settings import isolated_settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("kafka", "redis", "init", "worker", "api", "replay", "prometheus", "grafana")
LONG_RUNNING = ("kafka", "redis", "worker", "api")
NP_NAME = re.compile(r"\bNP_[A-Z0-9_]+\b")
# Variables of the compose file itself (host paths), not of the application.
HOST_ONLY_VARIABLES = {"NP_DATA_HOST_DIR"}


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command_lines(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    text = command if isinstance(command, str) else "\n".join(map(str, command))
    return text.splitlines()


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    result: dict[int, int] = {}
    for spec in service.get("ports", []):
        host, container = str(spec).rsplit(":", 1)[-2:]
        result[int(container)] = int(host.rsplit(":", 1)[-1])
    return result


def test_every_service_exists(services: dict[str, dict[str, Any]]) -> None:
    assert set(SERVICES) <= set(services)


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image or service.get("build"), f"{name} has neither image nor build"
        if image is None:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
        assert re.search(r"\d", tag) or service.get("build"), f"{name}: {image!r} not a version"


def test_compose_broker_is_the_version_the_local_stack_runs(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"


def test_kafka_is_single_node_kraft_without_auto_create(
    services: dict[str, dict[str, Any]],
) -> None:
    env = env_of(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"


def test_every_np_variable_is_a_settings_field(services: dict[str, dict[str, Any]]) -> None:
    fields = {f"NP_{name.upper()}" for name in Settings.model_fields}
    used: set[str] = set()
    for service in services.values():
        used |= {name for name in env_of(service) if name.startswith("NP_")}
        used |= set(NP_NAME.findall("\n".join(command_lines(service))))
    assert used, "the app services are configured through NP_ variables"
    assert used - HOST_ONLY_VARIABLES <= fields, sorted(used - HOST_ONLY_VARIABLES - fields)


def test_np_values_are_valid_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in ("init", "worker", "api", "replay"):
        env = env_of(services[name])
        fields = {k.removeprefix("NP_").lower(): v for k, v in env.items() if k.startswith("NP_")}
        settings = isolated_settings(**fields)
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        assert settings.redis_url == "redis://redis:6379/0"


def test_published_ports_match_the_settings_defaults(
    services: dict[str, dict[str, Any]],
) -> None:
    defaults = isolated_settings()
    api = isolated_settings(api_port=env_of(services["api"])["NP_API_PORT"])
    worker = isolated_settings(
        worker_metrics_port=env_of(services["worker"])["NP_WORKER_METRICS_PORT"]
    )
    assert api.api_port == defaults.api_port == 8000
    assert worker.worker_metrics_port == defaults.worker_metrics_port == 8001
    assert published(services["api"]) == {8000: 8000}
    assert published(services["worker"]) == {8001: 8001}
    # Inside a container the servers must listen on every interface, not on loopback.
    assert env_of(services["api"])["NP_API_HOST"] == "0.0.0.0"
    assert env_of(services["worker"])["NP_WORKER_METRICS_HOST"] == "0.0.0.0"


def test_the_api_requires_tokens_from_the_environment_and_leaves_probes_open(
    services: dict[str, dict[str, Any]],
) -> None:
    env = env_of(services["api"])
    assert env["NP_API_AUTH"] == "on"
    assert env["NP_API_TOKENS"] == "${NP_API_TOKENS:-}"  # hashes, from .env; never in the file
    # Prometheus scrapes /metrics and the health check calls /healthz, both without a token
    assert env["NP_API_AUTH_PROBES"] == "open"
    assert isolated_settings(api_auth_probes=env["NP_API_AUTH_PROBES"]).api_auth_probes == "open"
    header = (ROOT / "docker-compose.yml").read_text(encoding="utf-8").split("\nname:")[0]
    assert "api token create" in header and "#token=" in header
    for name, service in services.items():
        if name != "api":
            assert not {k for k in env_of(service) if k.startswith("NP_API_")}, name


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert check.get("interval"), f"{name}'s health check has no interval"
    for name, port in (("api", 8000), ("worker", 8001)):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in probe


def test_start_order_uses_conditions(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("init") == {"kafka": "service_healthy"}
    assert conditions("worker") == {
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "init": "service_completed_successfully",
    }
    assert conditions("api")["redis"] == "service_healthy"
    assert conditions("api")["init"] == "service_completed_successfully"
    assert conditions("replay") == {"worker": "service_healthy"}
    assert set(conditions("prometheus")) == {"worker", "api"}
    for name in ("init", "replay"):
        assert services[name]["restart"] == "no", f"{name} is a one-shot job"


def test_init_creates_topics_then_trains_only_without_a_model(
    services: dict[str, dict[str, Any]],
) -> None:
    script = "\n".join(command_lines(services["init"]))
    assert script.index("nowplaying topics") < script.index("nowplaying train")
    assert '-f "$$NP_MODEL_DIR/latest"' in script
    assert "nowplaying train --synthetic" in script


def test_every_nowplaying_command_in_compose_parses(services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    argvs: list[list[str]] = []
    for service in services.values():
        if service.get("image", "").startswith("nowplaying") and "entrypoint" not in service:
            argvs.append([str(a) for a in service["command"]])
        for line in command_lines(service):
            words = shlex.split(line.strip().removeprefix("exec "))
            if words[:1] == ["nowplaying"]:
                argvs.append(words[1:])
    assert {argv[0] for argv in argvs} >= {"topics", "train", "worker", "api", "replay"}
    for argv in argvs:
        parser.parse_args(argv)  # exits (fails the test) on an unknown option


def test_app_services_share_the_model_registry_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name in ("init", "worker", "api"):
        assert "models:/app/var/models" in services[name]["volumes"]
        assert env_of(services[name])["NP_MODEL_DIR"] == "/app/var/models"
    assert "models" in compose["volumes"]


def test_prometheus_config_scrapes_worker_and_api() -> None:
    config = load_yaml(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    flat = {t for ts in targets.values() for t in ts}
    assert flat == {"worker:8001", "api:8000"}
    assert all(
        job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"]
    )


def test_prometheus_and_grafana_mount_the_deploy_files(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = {
        name: [str(v).split(":")[0] for v in services[name]["volumes"]]
        for name in ("prometheus", "grafana")
    }
    assert "./deploy/prometheus/prometheus.yml" in mounts["prometheus"]
    assert set(mounts["grafana"]) == {
        "./deploy/grafana/provisioning",
        "./deploy/grafana/dashboards",
    }
    env = env_of(services["grafana"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_dockerfile_runs_nowplaying_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert froms and all(image == "python:3.11-slim" for image in froms)
    assert "-c constraints.txt" in text
    user = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert user and user[-1] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["nowplaying"\]$', text, flags=re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", "var", ".cache", ".git"} <= set(ignored)
