"""The worker's own Prometheus metrics, read before and after each step of a run."""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence

#: Their differences over a step describe the step: inference time, events per batch.
INFERENCE_SUM = "nowplaying_inference_seconds_sum"
BATCH_SUM = "nowplaying_batch_events_sum"
BATCH_COUNT = "nowplaying_batch_events_count"
WORKER_METRICS = (INFERENCE_SUM, BATCH_SUM, BATCH_COUNT)


def parse_metrics(text: str, names: Sequence[str]) -> dict[str, float]:
    """The sum over label sets of each named sample in Prometheus text format."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def scrape_metrics(port: int, names: Sequence[str]) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return parse_metrics(resp.read().decode(), names)
    except OSError:
        return {}


def metric_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if k in before}
