"""Soak: the real worker under a steady replay of real sessions for a long time (30 minutes by
default); its memory must stay flat once warm.

``make soak`` runs it (``pytest -m soak``). ``NP_SOAK_MINUTES`` (30) and ``NP_SOAK_RATE``
(events/s, 200) change the run, read when the test starts. The data set's 10,000 sessions are
replayed in cycles, each cycle under new session ids, so the worker always sees new listeners.

The worker's session cache is bounded to ``SOAK_CACHE_SESSIONS`` (``NP_SESSION_CACHE_SESSIONS``)
so that it is full, its steady state, well before the end. Every ``SAMPLE_S`` seconds the
worker's resident memory (``VmRSS``) and consumer lag are sampled. Warm-up is the first
half of the run (the session cache fills in ~7 minutes; the allocator keeps settling for a while
after); over the second half, the least-squares slope of RSS must stay under
``MAX_GROWTH_MIB_PER_HOUR``. The figures go to the test output and to
``test-artifacts/soak.json``. At the end: every track start has a list, nothing is
dead-lettered, and a sample of sessions passes the full invariant.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from models.datasets import MSSD_FILE, load_mssd
from models.labelled_sessions import session_events
from nowplaying.events import PlayEvent, TrackStart
from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
from tests.support.faults import BackgroundReplay, assert_healthy, wait_until
from tests.support.pipeline import TopicReader, WorkerProcess, check_invariant
from tests.support.services import free_port

pytestmark = [pytest.mark.soak, pytest.mark.integration]

SAMPLE_S = 5.0
WARMUP_SHARE = 0.5
MAX_GROWTH_MIB_PER_HOUR = 20.0
SAMPLED_SESSIONS = 300
#: The worker's session cache (LRU). At 200 events/s about 5 new sessions start per second, so
#: 2,000 fill it in ~7 minutes, inside the warm-up; the default (20,000) would take an hour.
SOAK_CACHE_SESSIONS = 2000
ARTIFACT = Path("test-artifacts/soak.json")


@dataclass
class Sample:
    t: float  # seconds since the replay started
    rss_mib: float
    lag: float
    events: float


@dataclass
class SoakReport:
    minutes: float
    target_rate: float
    events_produced: int = 0
    achieved_rate: float = 0.0
    track_starts: int = 0
    lists_distinct: int = 0
    rss_start_mib: float = 0.0
    rss_warm_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_max_mib: float = 0.0
    slope_mib_per_hour: float = 0.0
    max_lag: float = 0.0
    session_cache_capacity: int = SOAK_CACHE_SESSIONS
    sessions_replayed: int = 0
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.minutes:.0f} min at {self.achieved_rate:.0f} events/s "
            f"({self.events_produced} events, {self.sessions_replayed} sessions, "
            f"{self.track_starts} track starts -> {self.lists_distinct} lists); worker RSS "
            f"start {self.rss_start_mib:.0f} MiB, warm {self.rss_warm_mib:.0f} MiB, end "
            f"{self.rss_end_mib:.0f} MiB, max {self.rss_max_mib:.0f} MiB, slope after warm-up "
            f"{self.slope_mib_per_hour:+.1f} MiB/h; max lag {self.max_lag:.0f} messages"
        )


class SampledSent(list[PlayEvent]):
    """A ``sent`` list for :func:`replay_events` that keeps only the sampled sessions' events
    (a 30-minute replay sends far too many to keep)."""

    def __init__(self, session_ids: set[str]) -> None:
        super().__init__()
        self.session_ids = session_ids

    def append(self, event: PlayEvent) -> None:
        if event.session_id in self.session_ids:
            super().append(event)


def cycled_sessions(base: list[list[PlayEvent]]) -> Iterator[list[PlayEvent]]:
    """The sessions over and over, each cycle under new session, user and event ids."""
    cycle = 0
    while True:
        for events in base:
            if cycle == 0:
                yield events
            else:
                yield [relabel(e, cycle) for e in events]
        cycle += 1


def relabel(event: PlayEvent, cycle: int) -> PlayEvent:
    suffix = f".c{cycle}"
    return event.model_copy(
        update={
            "event_id": event.event_id + suffix,
            "session_id": event.session_id + suffix,
            "user_id": event.user_id + suffix,
        }
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_per_hour(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, in MiB per hour."""
    if len(samples) < 3:
        return 0.0
    ts = [s.t for s in samples]
    ys = [s.rss_mib for s in samples]
    t_mean, y_mean = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - t_mean) ** 2 for t in ts)
    num = sum((t - t_mean) * (y - y_mean) for t, y in zip(ts, ys, strict=True))
    return num / den * 3600 if den else 0.0


def test_worker_memory_stays_flat_under_a_steady_replay(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    minutes = float(os.environ.get("NP_SOAK_MINUTES", "30"))
    rate = float(os.environ.get("NP_SOAK_RATE", "200"))
    duration = minutes * 60
    total = int(duration * rate)
    settings = settings_factory(
        model_dir=shared_small_model(),
        worker_metrics_port=free_port(),
        session_ttl_seconds=int(duration + 3600),  # the final check still finds every session
        topic_partitions=4,
        session_cache_sessions=SOAK_CACHE_SESSIONS,
    )
    base = [session_events(s) for s in load_mssd(settings.data_dir / MSSD_FILE)]
    sample_ids = {s[0].session_id for s in random.Random(0).sample(base, SAMPLED_SESSIONS)}
    report = SoakReport(minutes=minutes, target_rate=rate)
    items = itertools.islice(interleave(cycled_sessions(base), 300, seed=20), total)

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        assert_healthy(worker)
        assert worker.proc is not None
        pid = worker.proc.pid
        report.rss_start_mib = rss_mib(pid)
        replay = BackgroundReplay(settings, items, rate, sent=SampledSent(sample_ids)).start()
        started = time.monotonic()
        while replay.running:
            time.sleep(SAMPLE_S)
            assert worker.running, worker.log_tail()
            report.samples.append(
                Sample(
                    t=round(time.monotonic() - started, 1),
                    rss_mib=round(rss_mib(pid), 1),
                    lag=worker.metric_value("nowplaying_consumer_lag_messages"),
                    events=worker.metric_value("nowplaying_events_total"),
                )
            )
        sent = replay.join(60)
        summary = replay.summary
        assert summary is not None
        assert wait_until(
            lambda: worker.metric_value("nowplaying_events_total") >= summary.events, 120, 1.0
        )
        with TopicReader(settings, settings.topic_recommendations) as recs:
            records = recs.read_all(timeout=600, settle=3.0)
        with TopicReader(settings, settings.topic_dead_letters) as dlq:
            dead = dlq.read_all(timeout=5)
        assert_healthy(worker)
        report.rss_end_mib = rss_mib(pid)

    triggers = {json.loads(r.value)["trigger_event_id"] for r in records}
    sampled_starts = {e.event_id for e in sent if isinstance(e, TrackStart)}
    sampled_records = [
        r for r in records if json.loads(r.value)["trigger_event_id"] in sampled_starts
    ]
    invariant = check_invariant(settings, list(sent), [], sampled_records, dead)

    warm = [s for s in report.samples if s.t >= duration * WARMUP_SHARE]
    report.events_produced = summary.events
    report.achieved_rate = summary.rate
    report.sessions_replayed = summary.sessions
    report.track_starts = summary.by_type.get("track_start", 0)
    report.lists_distinct = len(triggers)
    report.rss_warm_mib = warm[0].rss_mib if warm else report.rss_start_mib
    report.rss_max_mib = max(s.rss_mib for s in report.samples)
    report.slope_mib_per_hour = round(slope_per_hour(warm), 2)
    report.max_lag = max(s.lag for s in report.samples)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(asdict(report), indent=1))
    print(f"\n[soak] {report.summary()}\n[soak] sampled sessions: {invariant}")

    assert not dead
    assert report.lists_distinct == report.track_starts
    assert report.slope_mib_per_hour < MAX_GROWTH_MIB_PER_HOUR, report.summary()
