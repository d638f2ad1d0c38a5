"""The live terminal summary of ``make demo``: throughput, latency and a few listeners' lists.

Every few seconds it scrapes the worker's ``/metrics`` and asks the API for the most recently
active listeners and their Now Playing view, with the bearer token in ``NP_DEMO_API_TOKEN``
(``scripts/demo.sh`` mints one; none when the API runs open). Rates and the p99 are over the
last interval (bucket deltas, interpolated like PromQL's ``histogram_quantile``). Stops on
Ctrl-C.

    python scripts/demo_summary.py --api http://127.0.0.1:8000 --worker http://127.0.0.1:8001

``--delete-prefix PREFIX`` instead deletes a finished demo run's Redis keys and exits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

LATENCY = "nowplaying_event_to_recommendation_seconds"


@dataclass(frozen=True)
class Scrape:
    at: float
    counters: dict[str, float] = field(default_factory=dict)  # sample name -> sum over labels
    buckets: dict[float, float] = field(default_factory=dict)  # latency le -> cumulative count
    model_version: str | None = None


def fetch(url: str, timeout: float = 2.0, token: str | None = None) -> bytes | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def fetch_json(url: str) -> Any:
    """An API answer, with the demo's bearer token."""
    body = fetch(url, token=os.environ.get("NP_DEMO_API_TOKEN") or None)
    return None if body is None else json.loads(body)


def parse_scrape(text: str, at: float) -> Scrape:
    counters: dict[str, float] = {}
    buckets: dict[float, float] = {}
    version = None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_total"):
                counters[s.name] = counters.get(s.name, 0.0) + s.value
            elif s.name == f"{LATENCY}_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == "nowplaying_model_info":
                version = s.labels.get("version") or next(iter(s.labels.values()), None)
            elif s.name == "nowplaying_consumer_lag_messages":
                counters[s.name] = counters.get(s.name, 0.0) + s.value
    return Scrape(at, counters, buckets, version)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """PromQL's estimate from cumulative bucket counts (linear within a bucket)."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            share = (rank - lower_count) / width if width > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def interval_line(prev: Scrape, cur: Scrape) -> str:
    dt = max(cur.at - prev.at, 1e-6)

    def rate(name: str) -> float:
        return (cur.counters.get(name, 0.0) - prev.counters.get(name, 0.0)) / dt

    deltas = {le: cur.buckets.get(le, 0.0) - prev.buckets.get(le, 0.0) for le in cur.buckets}
    p99 = histogram_quantile(0.99, deltas)
    top = max((le for le in deltas if not math.isinf(le)), default=math.inf)
    if p99 is None:
        p99_text = "   -  "
    elif p99 >= top:  # in the +Inf bucket: only a lower bound is known
        p99_text = f">= {top * 1000:.0f} ms"
    else:
        p99_text = f"{p99 * 1000:.1f} ms"
    dead = cur.counters.get("nowplaying_dead_letters_total", 0.0)
    lag = cur.counters.get("nowplaying_consumer_lag_messages", 0.0)
    return (
        f"events {rate('nowplaying_events_total'):6.1f}/s | "
        f"lists {rate('nowplaying_recommendations_total'):6.1f}/s | "
        f"event→list p99 {p99_text} | dead letters {dead:.0f} | lag {lag:.0f} | "
        f"model {cur.model_version or '?'}"
    )


def listener_lines(api: str, count: int) -> list[str]:
    users = fetch_json(f"{api}/v1/users?limit={count}") or {}
    lines = []
    for user in users.get("users", [])[:count]:
        view = fetch_json(f"{api}/v1/users/{urllib.parse.quote(user)}/now-playing")
        if not view:
            continue
        now = view.get("now_playing") or {}
        recs = (view.get("recommendations") or {}).get("recommendations", [])
        top = ", ".join(r["track_id"] for r in recs[:5]) or "(no list yet)"
        playing = now.get("track_id", "(between)")
        lines.append(f"  {user:>14}  ▶ {playing:<10}  up next: {top}")
    return lines


def first_live_list(api: str, since: float) -> str | None:
    """A listener with a list computed after ``since`` (epoch s), once the pipeline made one.

    Lists from an earlier run may still be in Redis (they expire with the session TTL).
    """
    users = fetch_json(f"{api}/v1/users?limit=5") or {}
    for user in users.get("users", []):
        latest = fetch_json(f"{api}/v1/users/{urllib.parse.quote(user)}/recommendations")
        if latest and latest.get("generated_at", 0) >= since * 1000:
            return str(user)
    return None


def summarise(api: str, worker: str, users: int, prev: Scrape | None) -> Scrape | None:
    """Print one summary block (from the second scrape on); return the new scrape."""
    body = fetch(f"{worker}/metrics")
    stamp = time.strftime("%H:%M:%S")
    if body is None:
        print(f"[{stamp}] worker metrics not reachable yet at {worker}", flush=True)
        return prev
    cur = parse_scrape(body.decode(), time.time())
    if prev is not None:
        print(f"[{stamp}] {interval_line(prev, cur)}", flush=True)
        for line in listener_lines(api, users):
            print(line, flush=True)
    return cur


def delete_run_keys(prefix: str) -> int:
    """Delete the Redis keys of one demo run (``<prefix>:*``), on the Redis of NP_* settings."""
    from nowplaying.clients import redis_client  # noqa: PLC0415 - only this mode needs Redis
    from nowplaying.settings import Settings  # noqa: PLC0415

    client = redis_client(Settings())
    try:
        deleted = 0
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            deleted += int(client.delete(key))
    finally:
        client.close()
    print(f"deleted {deleted} Redis keys of this run ({prefix}:*)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--worker", default="http://127.0.0.1:8001")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between lines")
    parser.add_argument("--users", type=int, default=3, help="listeners shown")
    parser.add_argument("--t0", type=float, default=None, help="epoch seconds the demo started")
    parser.add_argument("--delete-prefix", default=None, help="delete a run's keys and exit")
    args = parser.parse_args(argv)
    if args.delete_prefix:
        return delete_run_keys(args.delete_prefix)
    t0 = args.t0 or time.time()
    live_at: float | None = None
    prev: Scrape | None = None
    next_line = time.time() + args.every
    try:
        while True:
            if live_at is None and (user := first_live_list(args.api, t0)) is not None:
                live_at = time.time()
                token = os.environ.get("NP_DEMO_API_TOKEN")
                print(
                    f"first live list after {live_at - t0:.1f} s: "
                    f"{args.api}/?user={urllib.parse.quote(user)}"
                    + (f"#token={token}" if token else ""),
                    flush=True,
                )
            if prev is None or time.time() >= next_line:
                next_line = time.time() + args.every
                prev = summarise(args.api, args.worker, args.users, prev)
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
