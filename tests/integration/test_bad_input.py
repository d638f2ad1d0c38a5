"""Bad input against the real worker: hypothesis-generated malformed messages (random bytes,
truncated JSON, deep nesting, wrong types, huge strings, bad timestamps, unknown
schema_version, unknown event types, non-objects), plus a far-future event, a tombstone and
non-UTF-8 keys, interleaved with real sessions' events.

Each bad message lands in the DLQ with a reason of the class its family calls for; every valid
event is still applied exactly once with its list published; the worker never restarts.
"""

from __future__ import annotations

import base64
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from nowplaying.clients import kafka_producer
from nowplaying.events import DeadLetter, PlayEvent
from streams.replay import RawRecord, interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
from tests.support.bad_input import FAMILIES, BadMessage, bad_messages, far_future_event
from tests.support.faults import assert_healthy, print_counts, starts_of, triggers_of
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    produce,
    real_session_events,
)

pytestmark = pytest.mark.slow

PER_FAMILY = 25


def generated_bad_messages(per_family: int) -> list[BadMessage]:
    """``per_family`` messages of every family, drawn by hypothesis (fixed seed: reproducible)."""
    by_family: dict[str, list[BadMessage]] = {f: [] for f in FAMILIES}
    payloads: set[bytes] = set()

    @settings(
        max_examples=per_family * len(FAMILIES) * 4,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(bad_messages())
    def collect(msg: BadMessage) -> None:
        bucket = by_family[msg.family]
        if len(bucket) < per_family and msg.raw not in payloads:
            bucket.append(msg)
            payloads.add(msg.raw)

    collect()
    return [m for bucket in by_family.values() for m in bucket]


def test_bad_input_is_dead_lettered_with_reasons_and_valid_events_keep_flowing(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    cfg = settings_factory(
        model_dir=shared_small_model(), worker_metrics_port=free_tcp_port(), retry_max_seconds=1.0
    )
    valid = list(interleave(real_session_events(cfg, 60, skip=1800), 30, seed=15))
    bad = generated_bad_messages(PER_FAMILY)
    future = BadMessage(
        "far_future",
        far_future_event(
            valid[0].model_dump(mode="json") | {"event_id": "future-1"}, cfg.max_clock_skew_seconds
        ),
        frozenset({"timestamp_in_future"}),
    )
    bad.append(future)
    items = mix(valid, bad, seed=15)
    families = Counter(m.family for m in bad)
    assert set(families) == {*FAMILIES, "far_future"}

    # Everything is on the topic before the worker starts: it runs flat out through the mix.
    sent, _ = produce(cfg, items)
    tombstone_key = b"tombstone-\xff"
    producer = kafka_producer(cfg)
    producer.send(cfg.topic_play_events, key=tombstone_key, value=None).get(30)
    producer.close()
    with WorkerProcess(cfg, tmp_path / "worker.log") as worker:
        with TopicReader(cfg, cfg.topic_recommendations) as recs:
            recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=120)
        with TopicReader(cfg, cfg.topic_dead_letters) as dlq:
            dlq.read_until(lambda rs: len(rs) >= len(bad) + 1, timeout=60)
        assert_healthy(worker)
        assert worker.starts == 1 and "Traceback" not in worker.log_text()
        dlq_metric = worker.metric_value("nowplaying_dead_letters_total")

    report = check_invariant(cfg, sent, [m.raw for m in bad] + [b""], recs.records, dlq.records)
    letters = {
        letter_payload(r.value): DeadLetter.model_validate_json(r.value) for r in dlq.records
    }
    wrong = [
        (m.family, letters[m.raw].error_class, m.raw[:80])
        for m in bad
        if letters[m.raw].error_class not in m.expected
    ]
    key_text = tombstone_key.decode(errors="replace")
    tombstone = [
        d for r in dlq.records if (d := DeadLetter.model_validate_json(r.value)).key == key_text
    ]
    print_counts(
        "bad input",
        report,
        produced=len(sent) + len(bad) + 1,
        bad_by_family=dict(families),
        worker_valid_events_per_s=round(len(sent) / span_seconds(recs.records)),
        dead_letters_metric=int(dlq_metric),
    )
    assert wrong == [], f"dead-lettered with an unexpected class: {wrong[:5]}"
    assert len(tombstone) == 1 and tombstone[0].payload_text == ""
    assert tombstone[0].error_class and tombstone[0].reason
    assert report.dead_letters == len(bad) + 1 == dlq_metric
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))


def mix(valid: list[PlayEvent], bad: list[BadMessage], seed: int) -> list[PlayEvent | RawRecord]:
    """The valid events in order, the bad messages spread at random positions between them,
    each bad one under a random key (some not UTF-8)."""
    rng = random.Random(seed)
    slots: dict[int, list[RawRecord]] = {}
    for i, msg in enumerate(bad):
        key = rng.choice([b"u-bad-%d" % i, bytes([0xFF, 0xFE, i % 256]), None])
        slots.setdefault(rng.randrange(len(valid) + 1), []).append((key, msg.raw))
    out: list[PlayEvent | RawRecord] = []
    for i, ev in enumerate(valid):
        out.extend(slots.get(i, []))
        out.append(ev)
    out.extend(slots.get(len(valid), []))
    return out


def span_seconds(records: list[Any]) -> float:
    stamps = [r.timestamp for r in records]
    return max(0.001, float(max(stamps) - min(stamps)) / 1000)


def letter_payload(value: bytes) -> bytes:
    letter = DeadLetter.model_validate_json(value)
    if letter.payload_text is not None:
        return letter.payload_text.encode()
    return base64.b64decode(letter.payload_base64 or "")
