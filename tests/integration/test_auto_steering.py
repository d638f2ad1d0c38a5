"""Automatic steering in the real worker: with ``NP_AUTO_STEERING=true``, a session whose last
two tracks were skipped early gets a list labelled ``auto`` (the model version's skip.onnx,
trained by ``nowplaying train``), through the real broker and Redis."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models.datasets import MSSD_FILE, load_mssd
from models.labelled_sessions import session_events
from models.registry import resolve_version_dir
from models.skip.scorer import SKIP_MODEL_FILE
from nowplaying.events import RecommendationMessage, TrackStart
from nowplaying.settings import Settings
from tests.support.pipeline import TopicReader, WorkerProcess, produce

pytestmark = pytest.mark.slow


def test_two_early_skips_in_a_row_steer_the_next_list_automatically(
    worker_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = worker_settings(auto_steering=True)
    assert (resolve_version_dir(settings.model_dir) / SKIP_MODEL_FILE).is_file()
    # a real session whose first two plays were skipped early (the third starts after them)
    session = next(
        s
        for s in load_mssd(settings.data_dir / MSSD_FILE, limit=2000)[-500:]
        if s.plays[0].outcome == s.plays[1].outcome == "skip_early"
    )
    events = session_events(session)
    starts = [i for i, e in enumerate(events) if isinstance(e, TrackStart)]
    with (
        TopicReader(settings, settings.topic_recommendations) as recs,
        WorkerProcess(settings, tmp_path / "worker.log"),
    ):
        sent, _ = produce(settings, events[: starts[2] + 1])
        third = sent[-1].event_id

        def found(records: list[Any]) -> bool:
            return any(json.loads(r.value)["trigger_event_id"] == third for r in records)

        recs.read_until(found, timeout=120, settle=0.3)
    record = next(r for r in recs.records if json.loads(r.value)["trigger_event_id"] == third)
    message = RecommendationMessage.model_validate_json(record.value)
    assert message.steering == "auto"
    assert len(message.recommendations) == settings.top_k
