"""Real-data runs of the online loop through the real broker and Redis: an A/A test, an A/B test
and a mid-replay promotion, each read out by ``nowplaying experiment report``.

    python -m devtools.experiment_run --default VERSION --weak VERSION [--rate 400]

Each scenario gets its own topics, consumer group and Redis prefix on the running services
(deleted afterwards), starts ``nowplaying worker`` (niced), replays the held-out **test split**
of the MSSD-derived sessions (the split the model versions were evaluated on, so the listeners
were not trained on) and waits until the worker has applied every event. Scenarios:

* ``aa``: ``control=DEFAULT:50,treatment=DEFAULT:50``; the readout with a 20-salt (and a
  500-salt) offline re-split of the same outcomes for the false-positive rate;
* ``ab``: ``control=DEFAULT:50,treatment=WEAK:50``;
* ``promote``: DEFAULT for everyone; ``latest`` moved to WEAK once half of the events are sent;
  checks that every list names one of the two, that each partition switches once and never
  back, how long after the promotion each partition switched, and that no list is lost or
  doubled. ``latest`` is moved back at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from models.datasets import load_sessions
from models.experiment_cli import read_topic
from models.labelled_sessions import session_events, split_sessions
from models.registry import latest_version, publish_version
from nowplaying.clients import redis_client
from nowplaying.events import PlayEvent, RecommendationMessage, TrackStart
from nowplaying.settings import Settings
from streams.replay import interleave, replay_events
from streams.topics import delete_topics, ensure_topics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenario_settings(base: Settings, name: str, **extra: Any) -> Settings:
    tag = f"xr-{name}-{uuid.uuid4().hex[:6]}"
    return base.model_copy(
        update={
            "topic_play_events": f"{tag}-play",
            "topic_recommendations": f"{tag}-recs",
            "topic_dead_letters": f"{tag}-dlq",
            "topic_outcomes": f"{tag}-outcomes",
            "topic_partitions": 4,
            "consumer_group": tag,
            "redis_key_prefix": tag,
            "worker_metrics_port": free_port(),
            **extra,
        }
    )


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(Path.cwd()))
    for field, value in settings.model_dump().items():
        key = f"NP_{field.upper()}"
        if value is None:
            env.pop(key, None)
        elif hasattr(value, "get_secret_value"):
            env[key] = value.get_secret_value()
        else:
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


class Worker:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log = log_path.open("wb")
        cmd = ["nice", "-n", "10", sys.executable, "-m", "nowplaying.cli", "worker"]
        self.proc = subprocess.Popen(cmd, env=child_env(settings), stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{settings.worker_metrics_port}"
        deadline = time.monotonic() + 120
        while not self._get("/healthz"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"worker did not start; see {log_path}")
            time.sleep(0.5)

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def events_applied(self) -> float:
        text = self._get("/metrics") or ""
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("nowplaying_events_total{")
        )

    def served(self) -> str | None:
        text = self._get("/readyz")
        return None if text is None else json.loads(text).get("model_version")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def test_split_events(settings: Settings, limit: int | None) -> list[list[PlayEvent]]:
    sessions, _ = load_sessions(settings, None, False, None)
    test = split_sessions(sessions, seed=7)[2][:limit]
    return [session_events(s) for s in test]


def replay(settings: Settings, sessions: list[list[PlayEvent]], rate: float) -> list[PlayEvent]:
    sent: list[PlayEvent] = []
    summary = replay_events(settings, interleave(sessions, 200, seed=5), rate=rate, sent=sent)
    print(f"  {summary.describe()}", flush=True)
    return sent


def wait_applied(worker: Worker, events: int, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while worker.events_applied() < events:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker applied {worker.events_applied()} of {events}")
        time.sleep(2)
    time.sleep(5)  # the last batches' outcomes and acknowledgements


def report(settings: Settings, out: Path, *extra: str) -> None:
    cmd = [sys.executable, "-m", "nowplaying.cli", "experiment", "report", "--out", str(out)]
    done = subprocess.run(
        [*cmd, *extra], env=child_env(settings), capture_output=True, text=True, check=False
    )
    print("  " + done.stdout.strip().replace("\n", "\n  "), flush=True)
    if done.returncode:
        raise RuntimeError(done.stderr)


def cleanup(settings: Settings) -> None:
    delete_topics(settings)
    redis = redis_client(settings)
    keys = list(redis.scan_iter(match=f"{settings.redis_key_prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        redis.delete(*keys[i : i + 500])
    redis.close()


def run_variants(
    base: Settings, name: str, spec: str, sessions: list[list[PlayEvent]], args: Any
) -> None:
    settings = scenario_settings(base, name, model_variants=spec, experiment_salt=f"{name}-1")
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    print(f"{name}: {spec}", flush=True)
    ensure_topics(settings)
    worker = Worker(settings, out / "worker.log")
    try:
        sent = replay(settings, sessions, args.rate)
        wait_applied(worker, len(sent))
    finally:
        worker.stop()
    try:
        report(settings, out, *(["--aa-salts", "20"] if name == "aa" else []))
        if name == "aa":
            report(settings, out / "aa-500-salts", "--aa-salts", "500", "--no-sequential")
    finally:
        cleanup(settings)


def run_promote(base: Settings, sessions: list[list[PlayEvent]], args: Any) -> dict[str, Any]:
    settings = scenario_settings(base, "promote", model_variants="", model_reload_seconds=2.0)
    out = args.out / "promote"
    out.mkdir(parents=True, exist_ok=True)
    registry = settings.model_dir
    before = latest_version(registry)
    publish_version(registry, registry / args.default, record_history=False)
    print(f"promote: {args.default} -> {args.weak} mid-replay", flush=True)
    ensure_topics(settings)
    worker = Worker(settings, out / "worker.log")
    promoted: dict[str, float] = {}
    try:
        total = sum(len(s) for s in sessions)
        result: list[PlayEvent] = []
        thread = threading.Thread(
            target=lambda: result.extend(replay(settings, sessions, args.rate))
        )
        thread.start()
        while worker.events_applied() < total / 2:
            time.sleep(0.5)
        promoted["at"] = time.time()
        publish_version(registry, registry / args.weak)
        while worker.served() != args.weak:
            time.sleep(0.1)
        promoted["readyz_after_s"] = time.time() - promoted["at"]
        thread.join()
        wait_applied(worker, len(result))
    finally:
        worker.stop()
        publish_version(registry, registry / (before or args.default), record_history=False)
    try:
        figures = check_switch(settings, result, promoted, args)
        (out / "switch.json").write_text(json.dumps(figures, indent=2) + "\n")
        print("  " + json.dumps(figures), flush=True)
        report(settings, out)
        return figures
    finally:
        cleanup(settings)


def check_switch(
    settings: Settings, sent: list[PlayEvent], promoted: dict[str, float], args: Any
) -> dict[str, Any]:
    starts = {e.event_id for e in sent if isinstance(e, TrackStart)}
    lists: dict[int, list[tuple[int, RecommendationMessage]]] = defaultdict(list)
    for r in read_topic(settings, settings.topic_recommendations):
        lists[r.partition].append((r.offset, RecommendationMessage.model_validate_json(r.value)))
    triggers = [m.trigger_event_id for ls in lists.values() for _, m in ls]
    distinct: dict[str, RecommendationMessage] = {}
    for ls in lists.values():
        for _, m in ls:
            distinct.setdefault(m.trigger_event_id, m)
    at_ms = promoted["at"] * 1000
    runs, switch_after = {}, {}
    for partition, ls in sorted(lists.items()):
        seq: list[str] = []
        for _, m in sorted(ls, key=lambda x: x[0]):
            if not seq or seq[-1] != m.model_version:
                seq.append(m.model_version)
        runs[partition] = seq
        new = [m.generated_at for _, m in ls if m.model_version == args.weak]
        switch_after[partition] = None if not new else round((min(new) - at_ms) / 1000, 2)
    versions = {m.model_version for m in distinct.values()}
    return {
        "track_starts_sent": len(starts),
        "lists_distinct": len(distinct),
        "lists_published": len(triggers),
        "starts_without_list": len(starts - set(distinct)),
        "lists_without_start": len(set(distinct) - starts),
        "versions": sorted(versions),
        "only_old_or_new": versions <= {args.default, args.weak},
        "runs_per_partition": runs,
        "switched_once_never_back": all(
            r in ([args.default], [args.default, args.weak], [args.weak]) for r in runs.values()
        ),
        "readyz_switch_after_s": round(promoted["readyz_after_s"], 2),
        "first_new_list_after_promote_s": switch_after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.experiment_run")
    parser.add_argument("--default", required=True, help="the default model version")
    parser.add_argument("--weak", required=True, help="a clearly weaker version")
    parser.add_argument("--rate", type=float, default=400.0, help="replay events per second")
    parser.add_argument("--sessions", type=int, default=None, help="test sessions (default all)")
    parser.add_argument("--out", type=Path, default=Path("var/experiment-runs"))
    parser.add_argument("--only", default="aa,ab,promote")
    args = parser.parse_args()
    base = Settings()
    sessions = test_split_events(base, args.sessions)
    print(f"{len(sessions)} test-split sessions, {sum(len(s) for s in sessions)} events")
    only = set(args.only.split(","))
    if "aa" in only:
        run_variants(
            base, "aa", f"control={args.default}:50,treatment={args.default}:50", sessions, args
        )
    if "ab" in only:
        run_variants(
            base, "ab", f"control={args.default}:50,treatment={args.weak}:50", sessions, args
        )
    if "promote" in only:
        run_promote(base, sessions, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
