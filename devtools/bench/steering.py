"""Steer event to refreshed list, next to track start to list: one short end-to-end scenario.

``python -m devtools.bench.steering [--rate 200] [--events 6000] [--steer-every 20] [--quick]``

The stream worker (``nowplaying worker``, pinned to one core like the end-to-end benchmark) gets
real sessions replayed at a fixed rate on its own topics; every ``--steer-every``-th event is
followed by a steer of that event's session (the five intents in turn; ``more_like_this`` and
``less_like_this`` name the session's last started track). Each answer's latency is its publish
time minus its trigger's produce time (Kafka timestamps, as in :mod:`devtools.bench.latency`),
reported for track starts and steers apart: p50 / p95 / p99 with a bootstrap 95% interval of the
p99. Writes ``steering.json`` and ``steering.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.bench import procs
from devtools.bench.e2e import WORKER, BenchError
from devtools.bench.isolation import (
    create_topics,
    delete_redis_keys,
    delete_topics,
    run_settings,
    settings_env,
)
from devtools.bench.kafka_io import AnswerReader, produce_at_rate, producer_for
from devtools.bench.latency import latencies_ms, latency_stats, percentile
from devtools.bench.machine import load_average, machine_info
from devtools.bench.model import MAIN_MODEL, QUICK_MODEL, bench_model_dir, ensure_model
from devtools.bench.run import RESULTS_DIR
from devtools.bench.timing import BENCH_CPU
from devtools.bench.workload import Prepared, bench_sessions, build_workload
from nowplaying.cli import start_process
from nowplaying.settings import Settings
from nowplaying.steer_events import INTENT_KINDS, TRACK_INTENTS

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Scenario:
    rate: float = 200.0
    events: int = 6000
    steer_every: int = 20
    warmup_events: int = 1000
    drain_timeout_s: float = 120.0


def with_steers(events: Sequence[Prepared], every: int) -> tuple[list[Prepared], set[str]]:
    """The workload with a steer after every ``every``-th event (of a session that has started a
    track), and the steers' event ids."""
    out: list[Prepared] = []
    steers: set[str] = set()
    last_start: dict[str, tuple[str, int]] = {}  # session -> (track, ts)
    for i, ev in enumerate(events, start=1):
        out.append(ev)
        data = json.loads(ev.value)
        if ev.is_start:
            last_start[data["session_id"]] = (data["track_id"], data["ts"])
        if i % every or data["session_id"] not in last_start:
            continue
        track, ts = last_start[data["session_id"]]
        intent = INTENT_KINDS[len(steers) % len(INTENT_KINDS)]
        steer: dict[str, Any] = {
            "schema_version": 1,
            "event_id": f"steer-{len(steers)}-{ev.event_id}",
            "event_type": "steer",
            "user_id": data["user_id"],
            "session_id": data["session_id"],
            "ts": max(ts, data["ts"]) + 1,
            "intent": intent,
        }
        if intent in TRACK_INTENTS:
            steer["track_id"] = track
        body = json.dumps(steer, separators=(",", ":")).encode()
        out.append(Prepared(steer["event_id"], ev.key, body, is_start=False))
        steers.add(steer["event_id"])
    return out, steers


def p99_interval(values: Sequence[float], draws: int = 1000, seed: int = 5) -> tuple[float, float]:
    """Bootstrap 95% interval of the nearest-rank p99."""
    rng = random.Random(seed)
    n = len(values)
    stats = sorted(percentile(sorted(rng.choices(values, k=n)), 99) for _ in range(draws))
    return percentile(stats, 2.5), percentile(stats, 97.5)


def summary(values: Sequence[float]) -> dict[str, Any]:
    stats = latency_stats(values)
    low, high = p99_interval(values) if values else (None, None)
    return {
        "answered": stats.matched,
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
        "p99_ms": stats.p99_ms,
        "p99_ci95_ms": [low, high],
        "max_ms": stats.max_ms,
    }


async def run_scenario(settings: Settings, scenario: Scenario, log_dir: Path) -> dict[str, Any]:
    s = run_settings(settings, "steer")
    await create_topics(s)
    child = procs.start(
        WORKER.command,
        cpu=BENCH_CPU,
        env={**settings_env(s), **procs.repository_env()},
        log_path=log_dir / "worker-steering.log",
    )
    producer = producer_for(s, linger_ms=0)
    reader = AnswerReader(s, s.topic_recommendations)
    try:
        await producer.start()
        await reader.start()
        sessions, source = bench_sessions(s, None)
        warm = build_workload(sessions, scenario.warmup_events, tag="w", concurrent=50)
        await produce_at_rate(producer, s.topic_play_events, warm, 500.0)
        wanted = {e.event_id for e in warm if e.is_start}
        await reader.collect_until(wanted, timeout_s=180, idle_s=180, alive=child.alive)
        if len({a.event_id for a in reader.answers} & wanted) < 0.99 * len(wanted):
            raise BenchError(f"the worker did not warm up:\n{child.log_tail()}")
        plays = build_workload(sessions, scenario.events, tag="m", concurrent=200, offset=50)
        events, steers = with_steers(plays, scenario.steer_every)
        starts = {e.event_id for e in events if e.is_start}
        collecting = asyncio.create_task(
            reader.collect_until(starts | steers, timeout_s=1e9, idle_s=1e9, alive=child.alive)
        )
        produced = await produce_at_rate(producer, s.topic_play_events, events, scenario.rate)
        try:
            await asyncio.wait_for(collecting, timeout=scenario.drain_timeout_s)
        except TimeoutError:
            log.warning("not every answer arrived within %s s", scenario.drain_timeout_s)
        lat = {
            kind: latencies_ms(
                {k: v for k, v in produced.sent_ms.items() if k in ids}, reader.answers
            )
            for kind, ids in (("track_start", starts), ("steer", steers))
        }
        return {
            "workload": source,
            "offered_rate": scenario.rate,
            "events": len(events),
            "track_starts": len(starts),
            "steers": len(steers),
            "track_start_to_list": summary(lat["track_start"]),
            "steer_to_list": summary(lat["steer"]),
        }
    finally:
        await reader.stop()
        await producer.stop()
        child.stop()
        await delete_topics(s)
        await asyncio.to_thread(delete_redis_keys, s)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| trigger | answered | p50 ms | p95 ms | p99 ms | p99 95% interval (bootstrap) |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("track start", "track_start_to_list"), ("steer", "steer_to_list")):
        r = result[key]
        low, high = r["p99_ci95_ms"]
        lines.append(
            f"| {name} | {r['answered']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{low}-{high} |"
        )
    head = (
        f"Offered {result['offered_rate']:g} events/s, {result['events']} events "
        f"({result['track_starts']} track starts, {result['steers']} steers), "
        f"model {result['model']}; {result['workload']}; {result['machine']}."
    )
    return head + "\n\n" + "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.bench.steering", description=__doc__)
    p.add_argument("--rate", type=float, default=Scenario.rate)
    p.add_argument("--events", type=int, default=Scenario.events)
    p.add_argument("--steer-every", type=int, default=Scenario.steer_every)
    p.add_argument("--quick", action="store_true", help="the quick benchmark model (20 trees)")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    settings = start_process(None)
    model_dir = bench_model_dir(args, args.quick)
    version_dir = ensure_model(settings, model_dir, QUICK_MODEL if args.quick else MAIN_MODEL)
    settings = settings.model_copy(update={"model_dir": model_dir})
    scenario = Scenario(rate=args.rate, events=args.events, steer_every=args.steer_every)
    args.out.mkdir(parents=True, exist_ok=True)
    load = load_average()
    result = asyncio.run(run_scenario(settings, scenario, args.out))
    info = machine_info()
    result["model"] = version_dir.name
    shown = "n/a" if load is None else ", ".join(f"{v:.2f}" for v in load)
    result["machine"] = f"{info['cpu_model']}, {info['cpus']} cores, load average before {shown}"
    (args.out / "steering.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "steering.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
