"""The provisioned Grafana dashboard queries only metrics (and labels) that nowplaying defines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nowplaying import metrics
from tests.support.dashboard import (
    GRAFANA_DIR,
    dashboard_exprs,
    grouping_labels,
    load_dashboards,
    metric_names,
    registry_labels,
    walk_panels,
)
from tests.support.settings import isolated_settings

PROVISIONING = GRAFANA_DIR / "provisioning"


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    found = load_dashboards()
    assert found, "no dashboard JSON under deploy/grafana/dashboards"
    return found


@pytest.fixture(scope="module")
def overview(dashboards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return dashboards["nowplaying.json"]


def _load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_metric_name_extraction_ignores_functions_labels_and_ranges() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{route!~".*/x"}'
        "[$__rate_interval]))) / on (job) group_left sum(b_total offset 5m) > bool 1"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total"}
    assert grouping_labels(expr) == {"le", "route", "job"}


def test_every_dashboard_metric_is_defined_in_nowplaying_metrics(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    defined = registry_labels(metrics)
    for name, dashboard in dashboards.items():
        exprs = dashboard_exprs(dashboard)
        assert exprs, f"{name} has no queries"
        for expr in exprs:
            used = metric_names(expr)
            assert used, f"no metric found in {expr!r}"
            unknown = used - defined.keys()
            assert not unknown, f"{name}: {expr!r} uses undefined metrics {sorted(unknown)}"


def test_grouping_labels_exist_on_the_queried_metrics(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    defined = registry_labels(metrics)
    for dashboard in dashboards.values():
        for expr in dashboard_exprs(dashboard):
            names = metric_names(expr)
            if "nowplaying_model_info" in names:
                continue  # an Info metric's labels are the keys of the dict it was given
            known = set().union(*(defined[n] for n in names))
            missing = grouping_labels(expr) - known
            assert not missing, f"{expr!r} groups by labels {sorted(missing)} its metrics lack"


def test_the_overview_covers_the_operational_questions(overview: dict[str, Any]) -> None:
    exprs = dashboard_exprs(overview)
    used = set().union(*(metric_names(e) for e in exprs))
    required = {
        "nowplaying_events_total",  # events/s by type
        "nowplaying_event_to_recommendation_seconds_bucket",  # end-to-end latency
        "nowplaying_dead_letters_total",  # dead letters by reason
        "nowplaying_inference_seconds_bucket",  # inference time
        "nowplaying_inference_batch_rows_count",  # inference batch size
        "nowplaying_redis_roundtrip_seconds_bucket",  # Redis round trip
        "nowplaying_consumer_lag_messages",  # consumer lag
        "nowplaying_model_info",  # model version
        "nowplaying_http_requests_total",  # API rate
        "nowplaying_http_request_duration_seconds_bucket",  # API latency
    }
    assert required <= used, f"no panel for {sorted(required - used)}"
    latency = [e for e in exprs if "nowplaying_event_to_recommendation_seconds_bucket" in e]
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(e.startswith(f"histogram_quantile({quantile},") for e in latency), quantile
    by_type = [e for e in exprs if "nowplaying_events_total" in e]
    assert any("event_type" in grouping_labels(e) for e in by_type)
    assert any("reason" in grouping_labels(e) for e in exprs if "dead_letters" in e)


def test_panels_are_well_formed(overview: dict[str, Any]) -> None:
    panels = list(walk_panels(overview["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        assert pos["h"] > 0
        ref_ids = [t["refId"] for t in panel.get("targets", [])]
        assert len(ref_ids) == len(set(ref_ids)), f"duplicate refId in {panel['title']}"
    assert overview["uid"] == "nowplaying-overview"  # links and alerts refer to it
    assert overview["schemaVersion"] >= 36


def test_panels_use_the_provisioned_datasource(overview: dict[str, Any]) -> None:
    provisioned = _load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for panel in walk_panels(overview["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    provider = _load_yaml(PROVISIONING / "dashboards" / "nowplaying.yml")
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    # docker-compose mounts deploy/grafana/dashboards here
    assert entry["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_the_worker_and_the_api_on_their_settings_ports() -> None:
    config = _load_yaml(GRAFANA_DIR.parent / "prometheus" / "prometheus.yml")
    interval = config["global"]["scrape_interval"]
    assert re.fullmatch(r"\d+(ms|s|m)", interval), interval
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    defaults = isolated_settings()
    assert f"worker:{defaults.worker_metrics_port}" in targets
    assert f"api:{defaults.api_port}" in targets
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_the_online_outcomes_are_shown_per_variant_and_model_version(
    overview: dict[str, Any],
) -> None:
    exprs = dashboard_exprs(overview)
    for metric in ("nowplaying_attributed_plays_total", "nowplaying_exposures_total"):
        grouped = [grouping_labels(e) for e in exprs if metric in metric_names(e)]
        assert any({"variant", "model_version"} <= g for g in grouped), metric
    skip = [e for e in exprs if "nowplaying_attributed_plays_total" in e and "skip" in e]
    assert any({"variant", "hit"} <= grouping_labels(e) for e in skip)  # recommended vs other
    assert any("nowplaying_model_reloads_total" in metric_names(e) for e in exprs)
