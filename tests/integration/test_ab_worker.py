"""An A/B test in the real worker: ``nowplaying worker`` with two variants (two real models), the
real broker and the real Redis.

Every listener's lists must come from the model of the variant the listener is assigned to (the
assignment a test computes on its own from the spec and the salt, as any other worker would),
both variants must serve listeners, and the pipeline's invariant must hold.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from models.datasets import synthetic_sessions
from models.experiments import experiment_from
from models.labelled_sessions import session_events
from nowplaying.events import RecommendationMessage, TrackStart
from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    distinct_triggers,
    produce,
)
from tests.support.readiness import readiness_document
from tests.support.tiny_models import shared_two_versions


def counted_lists(
    worker: WorkerProcess, variants: Iterable[str], expected: int
) -> dict[str, float]:
    """The worker's per-variant list counters, once they add up to ``expected`` (they are
    updated just after the lists are acknowledged by Kafka) or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        counts = {
            name: worker.metric_value("nowplaying_variant_lists_total", f'variant="{name}"')
            for name in variants
        }
        if sum(counts.values()) >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def test_each_listener_gets_lists_from_its_variant_model(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    registry, first, second = shared_two_versions()
    spec = f"control={first}:50,treatment={second}:50"
    settings = settings_factory(
        model_dir=registry,
        model_variants=spec,
        experiment_salt=f"salt-{uuid.uuid4().hex[:8]}",
        worker_metrics_port=free_tcp_port(),
        worker_session_timeout_seconds=6.0,
    )
    experiment = experiment_from(spec, settings.experiment_salt)
    assert experiment is not None
    versions = {"control": first, "treatment": second}
    sessions = [session_events(s) for s in synthetic_sessions(40, seed=11)]
    sent, _ = produce(settings, interleave(sessions, concurrent=40, seed=3))
    starts = {e.event_id for e in sent if isinstance(e, TrackStart)}
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        with TopicReader(settings, settings.topic_recommendations) as recs:
            recs.read_until(lambda rs: distinct_triggers(rs) >= len(starts), timeout=60)
            records = list(recs.records)
        status, body = worker.get("/readyz")
        lists_by_variant = counted_lists(worker, versions, expected=len(starts))
    report = check_invariant(settings, sent, [], records, [])
    assert report.lists_distinct == len(starts)
    messages = [RecommendationMessage.model_validate_json(r.value) for r in records]
    for message in messages:
        variant = experiment.assign(message.user_id)
        assert message.variant == variant, message.user_id
        assert message.model_version == versions[variant], message.user_id
    distinct = {m.trigger_event_id: m for m in messages}.values()
    served = Counter(experiment.assign(m.user_id) for m in distinct)
    listeners = Counter(experiment.assign(u) for u in {m.user_id for m in messages})
    print(f"\nA/B: listeners {dict(listeners)}, lists {dict(served)}; {report}")
    assert set(served) == {"control", "treatment"}
    assert lists_by_variant == {name: float(served[name]) for name in versions}
    ready = readiness_document(status, body)
    assert ready.ready and ready.variants == versions and ready.model_version == first


def test_a_variant_naming_a_missing_version_stops_the_worker_at_start(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    registry, first, _ = shared_two_versions()
    settings = settings_factory(
        model_dir=registry,
        model_variants=f"control={first}:90,treatment=20990101T000000Z-000000:10",
        worker_metrics_port=free_tcp_port(),
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log", start_timeout=60)
    with pytest.raises(RuntimeError, match="exited with 2"):
        worker.start()
    assert "variant 'treatment'" in worker.log_text()
