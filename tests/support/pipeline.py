"""Helpers for tests that run the real stream worker against the real broker and Redis.

Building blocks (each usable alone; fault and benchmark tests reuse them):

* :func:`worker_env` / :class:`WorkerProcess`: run ``nowplaying worker`` as a child process with
  a test's isolated :class:`Settings` (passed as ``NP_*`` variables), wait for its HTTP server,
  stop it with SIGTERM (graceful) or SIGKILL (crash), read its log and metrics.
* :func:`train_small_model`: a real LightGBM/ONNX model in a temporary registry, via
  ``nowplaying train`` (the same command users run).
* :func:`real_session_events`: the first N real sessions of the data set as play events.
* :func:`produce`: produce play events (restamped to the send time, like ``nowplaying replay``)
  and raw records (e.g. malformed ones) to ``play-events``.
* :class:`TopicReader`: read a topic from the beginning until a condition holds or a timeout.
* :func:`check_invariant`: the pipeline's end-to-end invariant over what was produced, what is in
  Redis and what is on the output topics; returns the counts, raises ``AssertionError`` with
  the first violations.

Typical use::

    settings = settings_factory(model_dir=model_dir, worker_metrics_port=free_tcp_port())
    sent = produce(settings, interleave(sessions, 50))
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        recs = TopicReader(settings, settings.topic_recommendations)
        recs.read_until(lambda rs: distinct_triggers(rs) >= n_starts, timeout=120)
        dlq = TopicReader(settings, settings.topic_dead_letters).read_all(timeout=10)
    report = check_invariant(settings, sent, [], recs.records, dlq)
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from models.datasets import MSSD_FILE, load_mssd
from models.labelled_sessions import session_events
from nowplaying.clients import kafka_python_security_kwargs
from nowplaying.events import DeadLetter, PlayEvent, RecommendationMessage, TrackStart
from nowplaying.settings import Settings
from streams.replay import RawRecord, ReplaySummary, replay_events
from tests.support.redis_sessions import (
    distinct_by_session,
    session_records,
    state_is_fold_of,
    stored_sessions,
)


def nowplaying_exe() -> str:
    """The ``nowplaying`` console script of the interpreter running the tests."""
    exe = Path(sys.executable).with_name("nowplaying")
    return str(exe) if exe.exists() else "nowplaying"


# --- the worker process -------------------------------------------------------------------------


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a child process: the current one plus every Settings field as
    ``NP_<FIELD>`` (so the child sees exactly ``settings``, whatever the shell or ``.env`` say),
    plus ``extra``."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        key = f"NP_{name.upper()}"
        if value is None:
            env.pop(key, None)
            continue
        if isinstance(value, SecretStr):
            env[key] = value.get_secret_value()
        else:
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(extra)
    return env


class WorkerProcess:
    """``nowplaying worker`` in a child process (its own process group), logging to a file.

    ``start()`` returns once the worker's HTTP server answers ``/healthz`` (the Faust app is up;
    it may still be joining the consumer group). Use as a context manager: on exit a still
    running worker gets SIGTERM, then SIGKILL after ``stop_timeout`` seconds. ``command``
    replaces ``nowplaying worker`` (e.g. another implementation under benchmark).
    """

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        start_timeout: float = 90.0,
        stop_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.extra_env = dict(extra_env or {})
        self.command = list(command) if command else [nowplaying_exe(), "worker"]
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.worker_metrics_host}:{self.settings.worker_metrics_port}"

    def start(self) -> WorkerProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the worker is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command,
                env=worker_env(self.settings, **self.extra_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_http(self.start_timeout)
        return self

    def _wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"the worker exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                self.get("/healthz", timeout=1.0)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise TimeoutError(f"the worker did not answer /healthz in {timeout} s:\n{self.log_tail()}")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """(status, body) of a GET on the worker's HTTP server."""
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def metric_value(self, name: str, labels: str = "") -> float:
        """Sum of the samples ``name{labels...}`` in /metrics (0 when absent)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and labels in line and not line.startswith("#"):
                head, _, value = line.rpartition(" ")
                if head.split("{")[0] == name:
                    total += float(value)
        return total

    def terminate(self) -> int:
        """SIGTERM and wait (graceful: finish the batch, commit, close). Returns the exit code."""
        return self._signal(signal.SIGTERM, self.stop_timeout)

    def kill(self) -> int:
        """SIGKILL: a crash; nothing is flushed or committed."""
        return self._signal(signal.SIGKILL, 30.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        proc = self.proc
        if proc is None:
            raise RuntimeError("the worker was never started")
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
                raise TimeoutError(
                    f"the worker did not stop {timeout} s after {sig.name}:\n{self.log_tail()}"
                ) from None
        return int(proc.returncode)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.running:
            with contextlib.suppress(TimeoutError):
                self.terminate()


# --- model and data -----------------------------------------------------------------------------


def train_small_model(
    out: Path,
    *,
    sessions: int = 1500,
    trees: int = 40,
    synthetic: bool = False,
    data_dir: Path | None = None,
    timeout: float = 600.0,
) -> Path:
    """Train a small real model with ``nowplaying train`` into the registry ``out``; returns
    ``out`` (its ``latest`` pointer names the new version)."""
    cmd = [
        nowplaying_exe(),
        "train",
        "--sessions",
        str(sessions),
        "--trees",
        str(trees),
        "--out",
        str(out),
        "--no-progress",
    ]
    if synthetic:
        cmd.append("--synthetic")
    env = dict(os.environ)
    if data_dir is not None:
        env["NP_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"nowplaying train failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return out


def real_session_events(
    settings: Settings, sessions: int, *, skip: int = 0
) -> list[list[PlayEvent]]:
    """Play events of real MSSD-derived sessions ``skip .. skip+sessions`` (one list each)."""
    loaded = load_mssd(settings.data_dir / MSSD_FILE, limit=skip + sessions)[skip:]
    return [session_events(s) for s in loaded]


# --- producing and reading topics ---------------------------------------------------------------


def produce(
    settings: Settings,
    items: Iterable[PlayEvent | RawRecord],
    *,
    rate: float | None = None,
) -> tuple[list[PlayEvent], ReplaySummary]:
    """Produce to ``settings.topic_play_events`` (acks=all, flushed). Play events are restamped
    to the send time, like ``nowplaying replay``; returns them as sent, and the summary."""
    sent: list[PlayEvent] = []
    summary = replay_events(settings, items, rate=rate, sent=sent)
    if summary.failed:
        raise RuntimeError(f"{summary.failed} records could not be produced")
    return sent, summary


class TopicReader:
    """Reads every partition of ``topic`` from the beginning (no consumer group, no commits)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.records: list[Any] = []
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_servers,
            client_id=f"test-reader-{uuid.uuid4().hex[:8]}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **kafka_python_security_kwargs(settings),
        )
        partitions = self._wait_partitions(30.0)
        self._consumer.assign([TopicPartition(topic, p) for p in partitions])
        self._consumer.seek_to_beginning()

    def _wait_partitions(self, timeout: float) -> set[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            parts = self._consumer.partitions_for_topic(self.topic)
            if parts:
                return set(parts)
            time.sleep(0.2)
        raise TimeoutError(f"topic {self.topic} has no partitions")

    def poll(self, timeout_s: float = 0.5) -> int:
        """Fetch what is there now; returns how many records arrived."""
        got = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=5000)
        n = 0
        for batch in got.values():
            self.records.extend(batch)
            n += len(batch)
        return n

    def read_until(
        self,
        done: Callable[[list[Any]], bool],
        *,
        timeout: float,
        settle: float = 1.0,
    ) -> list[Any]:
        """Poll until ``done(records)``; then keep reading until ``settle`` seconds pass with
        nothing new (trailing duplicates). Raises TimeoutError if ``done`` never holds."""
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.topic}: condition not met after {timeout} s "
                    f"({len(self.records)} records read)"
                )
            self.poll()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            if self.poll(0.2):
                quiet_since = time.monotonic()
        return self.records

    def read_all(self, *, timeout: float = 10.0, settle: float = 1.5) -> list[Any]:
        """Everything on the topic now (reads until ``settle`` quiet seconds, at most timeout)."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle and time.monotonic() < deadline:
            if self.poll(0.2):
                quiet_since = time.monotonic()
        return self.records

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def distinct_triggers(records: Sequence[Any]) -> int:
    """How many distinct trigger event ids the recommendation records cover."""
    return len({json.loads(r.value)["trigger_event_id"] for r in records})


# --- the invariant ------------------------------------------------------------------------------


@dataclass
class InvariantReport:
    """Counts behind a passed :func:`check_invariant` (print them in the test's output)."""

    sessions: int = 0
    valid_events: int = 0
    track_starts: int = 0
    lists_published: int = 0
    lists_distinct: int = 0
    invalid_messages: int = 0
    dead_letters: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return (
            f"{self.sessions} sessions, {self.valid_events} valid events, "
            f"{self.track_starts} track starts -> {self.lists_distinct} distinct lists "
            f"({self.lists_published} published); {self.invalid_messages} invalid -> "
            f"{self.dead_letters} dead letters {dict(self.dead_letter_reasons)}"
        )


def check_invariant(
    settings: Settings,
    valid_events: Sequence[PlayEvent],
    invalid_payloads: Sequence[bytes],
    rec_records: Sequence[Any],
    dlq_records: Sequence[Any],
    *,
    max_violations: int = 10,
) -> InvariantReport:
    """Check the end-to-end invariant of the pipeline; raise AssertionError on violations.

    ``valid_events``: every valid event as produced (copies of one event id allowed, e.g.
    redeliveries or produce-twice; each session's events in produce order).
    ``invalid_payloads``: the malformed messages produced. ``rec_records`` / ``dlq_records``:
    kafka-python records of the recommendations and dead-letter topics.

    * applied exactly once: each session's log in Redis is exactly its distinct events' records
      in order (none missing, none twice), and its stored state equals the offline
      ``state_summary(fold_events(...))`` of the same events;
    * every valid track_start has at least one published list, every copy identical, and no list
      has another trigger;
    * every list has K (``settings.top_k``) distinct tracks, ranks 1..K, scores non-increasing,
      none played in the session up to and including its trigger event;
    * every invalid payload is in the dead-letter topic with an error class and a reason.
    """
    violations: list[str] = []
    report = InvariantReport()
    by_session = distinct_by_session(valid_events)
    report.sessions = len(by_session)
    report.valid_events = sum(len(events) for events in by_session.values())
    _check_redis(settings, by_session, violations)
    _check_lists(settings, by_session, rec_records, report, violations)
    _check_dead_letters(invalid_payloads, dlq_records, report, violations)
    if violations:
        shown = "\n  ".join(violations[:max_violations])
        raise AssertionError(f"{len(violations)} invariant violations ({report}):\n  {shown}")
    return report


def _check_redis(
    settings: Settings, by_session: Mapping[str, list[PlayEvent]], violations: list[str]
) -> None:
    stored = stored_sessions(settings, list(by_session))
    for (sid, events), (log, state) in zip(by_session.items(), stored, strict=True):
        expected = session_records(events)
        if log != expected:
            violations.append(
                f"session {sid}: Redis log has {len(log)} records, expected {len(expected)} "
                "(each valid event exactly once, in order)"
            )
            continue
        if not state_is_fold_of(state, events):
            violations.append(f"session {sid}: stored state differs from the offline features")


def _check_lists(
    settings: Settings,
    by_session: Mapping[str, list[PlayEvent]],
    rec_records: Sequence[Any],
    report: InvariantReport,
    violations: list[str],
) -> None:
    copies: dict[str, list[bytes]] = defaultdict(list)
    for r in rec_records:
        copies[json.loads(r.value)["trigger_event_id"]].append(bytes(r.value))
    played_at: dict[str, set[str]] = {}
    for events in by_session.values():
        played: set[str] = set()
        for ev in events:
            played.add(ev.track_id)
            if isinstance(ev, TrackStart):
                played_at[ev.event_id] = set(played)
    report.track_starts = len(played_at)
    report.lists_published = len(rec_records)
    report.lists_distinct = len(copies)
    for trigger in sorted(set(played_at) - set(copies)):
        violations.append(f"track_start {trigger}: no list published")
    for trigger in sorted(set(copies) - set(played_at)):
        violations.append(f"list for {trigger}, which is not a valid track_start")
    for trigger, values in copies.items():
        if trigger not in played_at:
            continue
        if len(set(values)) > 1:
            violations.append(f"track_start {trigger}: {len(set(values))} different lists")
        message = RecommendationMessage.model_validate_json(values[0])
        problem = _list_problem(message, settings.top_k, played_at[trigger])
        if problem:
            violations.append(f"list for {trigger}: {problem}")


def _list_problem(message: RecommendationMessage, k: int, played: set[str]) -> str | None:
    recs = message.recommendations
    tracks = [r.track_id for r in recs]
    if len(tracks) != k or len(set(tracks)) != k:
        return f"{len(set(tracks))} distinct tracks of {len(tracks)}, expected {k}"
    if [r.rank for r in recs] != list(range(1, k + 1)):
        return "ranks are not 1..K"
    scores = [r.score for r in recs]
    if any(a < b for a, b in itertools.pairwise(scores)):
        return "not sorted by score"
    already = played.intersection(tracks)
    if already:
        return f"recommends tracks already played: {sorted(already)}"
    return None


def _check_dead_letters(
    invalid_payloads: Sequence[bytes],
    dlq_records: Sequence[Any],
    report: InvariantReport,
    violations: list[str],
) -> None:
    letters = [DeadLetter.model_validate_json(r.value) for r in dlq_records]
    report.invalid_messages = len(invalid_payloads)
    report.dead_letters = len(letters)
    report.dead_letter_reasons = Counter(d.error_class for d in letters)
    found: Counter[bytes] = Counter()
    for d in letters:
        if not d.error_class or not d.reason:
            violations.append(f"dead letter at offset {d.source_offset} has no class or reason")
        found[_payload(d)] += 1
    for payload, n in Counter(invalid_payloads).items():
        if found[payload] < n:
            violations.append(
                f"invalid message {payload[:60]!r}: produced {n}x, in the DLQ {found[payload]}x"
            )


def _payload(letter: DeadLetter) -> bytes:
    if letter.payload_text is not None:
        return letter.payload_text.encode()
    return base64.b64decode(letter.payload_base64 or "")
