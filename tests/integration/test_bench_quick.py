"""``python -m devtools.bench --quick``: the harness runs end to end on the real broker and Redis.

A tiny run, to check the harness works (never a measurement): it trains a tiny model, runs the
stage benchmarks, the passthrough, the worker and the naive implementation at a low rate and at
max, profiles the worker for a few seconds, and writes JSON, Markdown and PNG results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "devtools" / "bench"
COMMITTED_TABLES = [BENCH_DIR / name for name in ("RESULTS.md", "RESULTS-rss.md", "CHANGES.md")]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_bench_writes_results(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results"
    committed_before = [path.read_bytes() for path in COMMITTED_TABLES]
    env = {
        **os.environ,
        "NP_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "NP_REDIS_URL": redis_url,
    }
    cmd = [sys.executable, "-m", "devtools.bench", "--quick", "--out", str(out)]
    cmd += ["--model-dir", str(tmp_path / "m")]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=850, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    data = json.loads((out / "results.json").read_text())
    assert data["quick"] is True
    assert data["machine"]["cpus"] == os.cpu_count()
    stages = {s["stage"] for s in data["stages"]}
    assert stages == {"ranker", "rows", "features"}
    assert all(s["rate"] > 0 for s in data["stages"])
    limits = {lim["name"] for lim in data["limits"]}
    assert {"inference-only limit", "aiokafka passthrough"} <= limits

    runs = {(r["impl"], r["offered_rate"]): r for r in data["e2e"]}
    for impl in ("passthrough", "worker", "naive", "2 workers"):
        at_max = runs[(impl, None)]
        assert at_max["answered"] == at_max["produced"], impl
        assert at_max["sustained_eps"] > 0 and at_max["p99_ms"] is not None, impl
        assert at_max["cpu_ms_per_event"] > 0 and at_max["rss_mb_end"] > 10, impl
    assert runs[("worker", None)]["inference_share"] is not None
    assert data["targets"], "the targets are checked against the run"
    assert "two workers" in {t["name"] for t in data["targets"]}
    assert data["quality"] and data["quality"][0]["ndcg_at_10"] is not None
    assert data["profile"], "py-spy sampled the worker"

    table = (out / "results.md").read_text()
    assert "| worker | max |" in table and "## Targets" in table
    assert (out / "latency-throughput.png").read_bytes()[:4] == b"\x89PNG"
    # A quick run is not a measurement: the committed tables stay as they were.
    assert [path.read_bytes() for path in COMMITTED_TABLES] == committed_before
