"""Hot model reload in the real worker, on the real broker and Redis, with two real tiny models.

Mid-replay, ``latest`` is moved to another version (a promotion), then back (a rollback): the
worker serves the new version within 10 s without a restart, every list names the old or the new
version, each partition's lists switch once and never back, nothing is lost or doubled, and every
exposure gets its one outcome. A bad version (another feature version, a corrupt graph, scores
that differ from the stored parity rows) is refused with a log line and a metric, and the old
model keeps serving.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.datasets import synthetic_sessions
from models.experiments import experiment_from
from models.labelled_sessions import session_events
from models.registry import publish_version
from models.variants_file import VariantsSpec, clear_variants_file, write_variants_file
from models.version_check import PARITY_FILE
from nowplaying.events import PlayEvent, RecommendationMessage, TrackStart
from nowplaying.settings import Settings
from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.outcomes import check_outcomes
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    distinct_triggers,
    produce,
)
from tests.support.readiness import readiness_document
from tests.support.tiny_models import shared_two_versions

SWITCH_LIMIT_SECONDS = 10.0


def private_registry(tmp_path: Path) -> tuple[Path, str, str]:
    source, first, second = shared_two_versions()
    registry = tmp_path / "registry"
    shutil.copytree(source, registry)
    publish_version(registry, registry / first, record_history=False)
    return registry, first, second


def events_of(count: int, seed: int, prefix: str) -> list[PlayEvent]:
    sessions = [session_events(s) for s in synthetic_sessions(count, seed=seed)]
    out = []
    for e in interleave(sessions, concurrent=count, seed=seed):
        user, session = f"{prefix}-{e.user_id}", f"{prefix}-{e.session_id}"
        out.append(
            e.model_copy(
                update={
                    "event_id": f"{prefix}-{e.event_id}",
                    "user_id": user,
                    "session_id": session,
                }
            )
        )
    return out


def served_version(worker: WorkerProcess) -> str | None:
    status, body = worker.get("/readyz")
    return readiness_document(status, body).model_version


def wait_for_version(worker: WorkerProcess, version: str) -> float:
    """Seconds until the worker's /readyz names ``version`` (fails after the limit)."""
    started = time.monotonic()
    while served_version(worker) != version:
        elapsed = time.monotonic() - started
        assert elapsed < SWITCH_LIMIT_SECONDS, f"still serving {served_version(worker)}"
        time.sleep(0.1)
    return time.monotonic() - started


def starts(events: Sequence[PlayEvent]) -> set[str]:
    return {e.event_id for e in events if isinstance(e, TrackStart)}


def lists_of(records: Sequence[Any]) -> list[tuple[int, int, RecommendationMessage]]:
    return sorted(
        (r.partition, r.offset, RecommendationMessage.model_validate_json(r.value)) for r in records
    )


def version_runs(records: Sequence[Any]) -> dict[int, list[str]]:
    """Per partition, the model versions of its lists in offset order, runs collapsed."""
    runs: dict[int, list[str]] = defaultdict(list)
    for partition, _, m in lists_of(records):
        if not runs[partition] or runs[partition][-1] != m.model_version:
            runs[partition].append(m.model_version)
    return runs


def triggers_at_least(n: int) -> Callable[[list[Any]], bool]:
    return lambda records: distinct_triggers(records) >= n


def worker_settings(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], registry: Path
) -> Settings:
    return settings_factory(
        model_dir=registry,
        model_reload_seconds=0.5,
        worker_metrics_port=free_tcp_port(),
        worker_session_timeout_seconds=6.0,
        experiment_salt=f"salt-{uuid.uuid4().hex[:8]}",
    )


def test_promote_then_rollback_mid_replay_switches_each_partition_once_and_loses_nothing(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    registry, first, second = private_registry(tmp_path)
    settings = worker_settings(settings_factory, free_tcp_port, registry)
    phases = [events_of(30, seed, f"p{seed}") for seed in (1, 2, 3)]
    sent_all: list[PlayEvent] = []
    with (
        WorkerProcess(settings, tmp_path / "worker.log") as worker,
        TopicReader(settings, settings.topic_recommendations) as recs,
        TopicReader(settings, settings.topic_outcomes) as outs,
    ):
        switches = []
        for phase, version in zip(phases, (first, second, first), strict=True):
            if version != served_version(worker):
                publish_version(registry, registry / version)  # promote, then roll back
                switches.append(wait_for_version(worker, version))
            sent, _ = produce(settings, phase)
            sent_all += sent
            want = len(starts(sent_all))
            recs.read_until(triggers_at_least(want), timeout=90)
            phase_lists = [
                m for _, _, m in lists_of(recs.records) if m.trigger_event_id in starts(sent)
            ]
            assert {m.model_version for m in phase_lists} == {version}
        outs.read_all(timeout=15)
        reloads = worker.metric_value("nowplaying_model_reloads_total", 'result="swapped"')
        ready = readiness_document(*worker.get("/readyz"))
    report = check_invariant(settings, sent_all, [], recs.records, [])
    assert report.lists_distinct == len(starts(sent_all))
    versions = {m.model_version for _, _, m in lists_of(recs.records)}
    assert versions == {first, second}
    for partition, runs in version_runs(recs.records).items():
        # first, then second, then first again after the rollback: one switch per move
        assert runs in ([first], [first, second], [first, second, first]), (partition, runs)
    assert max(switches) < SWITCH_LIMIT_SECONDS and reloads == 2
    assert "registry latest: " + first in ready.dependencies["model"].detail
    found = check_outcomes(sent_all, recs.records, outs.records)
    print(f"\nswitches after {[round(s, 2) for s in switches]} s; {report}; outcomes {len(found)}")


def corrupt_copies(registry: Path, good: str, other: str) -> dict[str, str]:
    """Three bad versions copied from ``good``: result label -> version name."""
    bad = {}
    for kind in ("feature_mismatch", "load_failed", "parity_failed"):
        name = f"29990101T000000Z-{kind.replace('_', '')[:6]}"
        folder = registry / name
        shutil.copytree(registry / good, folder)
        meta = json.loads((folder / "metadata.json").read_text())
        meta["version"] = name
        if kind == "feature_mismatch":
            meta["feature_version"] = 999
        (folder / "metadata.json").write_text(json.dumps(meta))
        if kind == "load_failed":
            (folder / "model.onnx").write_bytes(b"not an onnx graph")
        if kind == "parity_failed":  # another model's graph under this version's parity rows
            shutil.copy(registry / other / "model.onnx", folder / "model.onnx")
        bad[kind] = name
    assert (registry / good / PARITY_FILE).is_file()
    return bad


def test_bad_versions_are_refused_and_the_old_model_keeps_serving(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    registry, first, second = private_registry(tmp_path)
    bad = corrupt_copies(registry, second, first)
    settings = worker_settings(settings_factory, free_tcp_port, registry)
    sent_all: list[PlayEvent] = []
    with (
        WorkerProcess(settings, tmp_path / "worker.log") as worker,
        TopicReader(settings, settings.topic_recommendations) as recs,
    ):
        for i, (kind, version) in enumerate(bad.items()):
            publish_version(registry, registry / version)
            deadline = time.monotonic() + SWITCH_LIMIT_SECONDS
            label = f'result="{kind}"'
            while worker.metric_value("nowplaying_model_reloads_total", label) < 1:
                assert time.monotonic() < deadline, f"{kind} not refused: {worker.log_tail()}"
                time.sleep(0.2)
            sent, _ = produce(settings, events_of(10, 10 + i, f"b{i}"))
            sent_all += sent
            want = len(starts(sent_all))
            recs.read_until(triggers_at_least(want), timeout=60)
            assert served_version(worker) == first
        # the spec can change too: an A/B test naming a bad version is refused as well
        write_variants_file(
            registry, VariantsSpec(f"control={first}:1,bad={bad['load_failed']}:1", "x")
        )
        time.sleep(2.0)
        assert served_version(worker) == first
        log = worker.log_text()
        swapped = worker.metric_value("nowplaying_model_reloads_total", 'result="swapped"')
    check_invariant(settings, sent_all, [], recs.records, [])
    assert {m.model_version for _, _, m in lists_of(recs.records)} == {first}
    assert swapped == 0
    for version in bad.values():
        assert "model reload refused" in log and version in log


def test_an_ab_test_started_and_ended_live_through_the_variants_file(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    registry, first, second = private_registry(tmp_path)
    settings = worker_settings(settings_factory, free_tcp_port, registry)
    spec = VariantsSpec(f"control={first}:50,treatment={second}:50", "live-1")
    experiment = experiment_from(spec.spec, spec.salt)
    assert experiment is not None
    versions = {"control": first, "treatment": second}
    with (
        WorkerProcess(settings, tmp_path / "worker.log") as worker,
        TopicReader(settings, settings.topic_recommendations) as recs,
    ):
        write_variants_file(registry, spec)
        deadline = time.monotonic() + SWITCH_LIMIT_SECONDS
        while readiness_document(*worker.get("/readyz")).variants != versions:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.1)
        sent, _ = produce(settings, events_of(40, 7, "ab"))
        recs.read_until(triggers_at_least(len(starts(sent))), timeout=60)
        info = [line for line in worker.metrics().splitlines() if "nowplaying_model_info{" in line]
        clear_variants_file(registry)
        deadline = time.monotonic() + SWITCH_LIMIT_SECONDS
        while readiness_document(*worker.get("/readyz")).variants is not None:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.1)
    lists = [m for _, _, m in lists_of(recs.records)]
    for m in lists:
        assert m.variant == experiment.assign(m.user_id)
        assert m.model_version == versions[m.variant]
    assert {m.variant for m in lists} == {"control", "treatment"}
    assert any("live-1" in line and f"treatment={second}" in line for line in info), info
