"""Every metric the Grafana dashboard queries is exposed by the running worker or the API.

A real session replay (plus one malformed message, for the dead-letter panel) runs through the
real worker while the test scrapes the worker's ``/metrics``; the API's ``/metrics`` is scraped
after a few requests. The dashboard's metric names must all be there, and the labels its
queries group by must be on the samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import SettingsFactory
from tests.support.api_server import running_api, shared_small_model
from tests.support.api_tokens import API_TOKENS, READER
from tests.support.dashboard import (
    dashboard_exprs,
    exposition_labels,
    grouping_labels,
    load_dashboards,
    metric_names,
    sampled_names,
)
from tests.support.pipeline import WorkerProcess, produce, real_session_events

pytestmark = pytest.mark.slow

#: Metrics that must have values (not just a declaration) after a replay with a dead letter.
MUST_HAVE_SAMPLES = {
    "nowplaying_events_total",
    "nowplaying_recommendations_total",
    "nowplaying_event_to_recommendation_seconds_bucket",
    "nowplaying_dead_letters_total",
    "nowplaying_inference_seconds_bucket",
    "nowplaying_inference_batch_rows_count",
    "nowplaying_redis_roundtrip_seconds_bucket",
    "nowplaying_consumer_lag_messages",
    "nowplaying_model_info",
    "nowplaying_http_requests_total",
    "nowplaying_http_request_duration_seconds_bucket",
}


def test_dashboard_metrics_are_in_real_scrapes_during_a_replay(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    settings = settings_factory(
        model_dir=shared_small_model(),
        worker_metrics_port=free_tcp_port(),
        worker_lag_interval_seconds=0.5,  # a lag sample soon after the replay
        api_tokens=API_TOKENS,
    )
    sessions = real_session_events(settings, 6)
    events = [e for s in sessions for e in s]
    malformed = (b"mssd-u1", b'{"event_type": "track_start", "user_id": "no closing brace"')

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        produce(settings, [*events, malformed], rate=200.0)
        deadline = time.monotonic() + 120
        while True:  # until the replay, the dead letter and a lag measurement went through
            text = worker.metrics()
            if (
                worker.metric_value("nowplaying_events_total") >= len(events)
                and worker.metric_value("nowplaying_dead_letters_total") >= 1
                and "\nnowplaying_consumer_lag_messages{" in text
            ):
                break
            assert time.monotonic() < deadline, "the worker did not process the replay in time"
            time.sleep(0.5)

    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as http:
        latest = http.get("/v1/users/mssd-u1/recommendations", headers=READER.headers)
        assert latest.status_code == 200
        http.get("/healthz")
        api_text = http.get("/metrics").text

    exposed = exposition_labels(text)
    for name, labels in exposition_labels(api_text).items():
        exposed.setdefault(name, set()).update(labels)
    sampled = sampled_names(text) | sampled_names(api_text)

    used: set[str] = set()
    for dashboard in load_dashboards().values():
        for expr in dashboard_exprs(dashboard):
            names = metric_names(expr)
            used |= names
            missing = names - exposed.keys()
            assert not missing, f"{expr!r}: {sorted(missing)} not in the worker's or API's scrape"
            with_samples = names & sampled
            if with_samples:
                labels = set().union(*(exposed[n] for n in with_samples))
                absent = grouping_labels(expr) - labels
                assert not absent, f"{expr!r}: no samples carry the labels {sorted(absent)}"

    assert used >= MUST_HAVE_SAMPLES
    assert sampled >= MUST_HAVE_SAMPLES, f"no samples for {sorted(MUST_HAVE_SAMPLES - sampled)}"
    assert "version" in exposed["nowplaying_model_info"]  # the Model version panel's label
