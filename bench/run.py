"""``nowplaying bench``: stage and end-to-end benchmarks, next to their limits, in one run.

Suites: ``stages`` (ranker, feature store, feature rows), ``e2e`` (passthrough, worker, naive at
fixed rates and max), ``all`` (both, plus a py-spy profile of the worker at max rate), ``profile``
(only the profile), ``rss`` (the worker at 500 events/s for 10 minutes, RSS over time).

Results go to ``--out`` (default ``bench/results``): ``results-<stamp>.json``, ``results.md``,
``latency-throughput.png``, the processes' logs; ``bench/RESULTS.md`` gets a copy of the table
after a full (not ``--quick``) run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import e2e, profile, stages, targets
from bench.machine import load_average, machine_info
from bench.report import E2EResult, Report, render_markdown, write_chart, write_json
from bench.timing import BENCH_CPU
from bench.workload import bench_sessions
from models.datasets import MSSD_FILE
from models.registry import ModelNotFoundError, resolve_version_dir
from nowplaying.settings import Settings

log = logging.getLogger("bench")

RATES = (200.0, 500.0, 700.0, 1000.0, 2000.0)
STEP_SECONDS = 20.0
MAX_EVENTS = 30_000
NAIVE_RATES = (100.0, 200.0, 350.0, 500.0)
RSS_RATE = 500.0
RSS_SECONDS = 600.0
COMMITTED_TABLE = Path(__file__).with_name("RESULTS.md")


@dataclass(frozen=True)
class Plan:
    """Which runs a suite makes, and how big."""

    stages: bool
    passthrough: tuple[e2e.Step, ...]
    worker: tuple[e2e.Step, ...]
    naive: tuple[e2e.Step, ...]
    profile_seconds: float  # 0: no profile
    warmup_events: int


def fixed(rates: tuple[float, ...], seconds: float) -> tuple[e2e.Step, ...]:
    return tuple(e2e.Step(r, int(r * seconds)) for r in rates)


def plan_for(suite: str, quick: bool) -> Plan:
    if quick:
        tiny = (e2e.Step(200.0, 300), e2e.Step(None, 600))
        return Plan(
            stages=suite in {"stages", "all"},
            passthrough=tiny if suite in {"e2e", "all"} else (),
            worker=tiny if suite in {"e2e", "all", "profile", "rss"} else (),
            naive=tiny if suite in {"e2e", "all"} else (),
            profile_seconds=3.0 if suite in {"all", "profile"} else 0.0,
            warmup_events=200,
        )
    e2e_on = suite in {"e2e", "all"}
    worker: tuple[e2e.Step, ...] = ()
    if e2e_on:
        worker = (*fixed(RATES, STEP_SECONDS), e2e.Step(None, MAX_EVENTS))
    elif suite == "rss":
        worker = (e2e.Step(RSS_RATE, int(RSS_RATE * RSS_SECONDS)),)
    return Plan(
        stages=suite in {"stages", "all"},
        passthrough=(e2e.Step(2000.0, 40_000), e2e.Step(None, 60_000)) if e2e_on else (),
        worker=worker,
        naive=(*fixed(NAIVE_RATES, STEP_SECONDS), e2e.Step(None, 10_000)) if e2e_on else (),
        profile_seconds=20.0 if suite in {"all", "profile"} else 0.0,
        warmup_events=2000,
    )


# --- the model ------------------------------------------------------------------------------


def bench_model_dir(args: argparse.Namespace, quick: bool) -> Path:
    given: Path | None = getattr(args, "model_dir", None)
    if given is not None:
        return given
    return Path("var") / ("bench-models-quick" if quick else "bench-models")


def ensure_model(settings: Settings, model_dir: Path, quick: bool) -> Path:
    """The benchmark's model version folder, trained first when the registry has none
    (200 trees / 31 leaves on the real data when present; a tiny one for ``--quick``)."""
    try:
        return resolve_version_dir(model_dir)
    except ModelNotFoundError:
        pass
    cmd = [e2e.nowplaying_exe(), "train", "--out", str(model_dir), "--no-progress"]
    cmd += ["--trees", "20", "--leaves", "15", "--sessions", "400"] if quick else []
    cmd += [] if quick else ["--trees", "200", "--leaves", "31"]
    if not data_present(settings):
        cmd.append("--synthetic")
    log.info("training the benchmark model: %s", " ".join(cmd))
    subprocess.run(cmd, check=True, timeout=3600)
    return resolve_version_dir(model_dir)


def data_present(settings: Settings) -> bool:
    return (settings.data_dir / MSSD_FILE).is_file()


# --- running ----------------------------------------------------------------------------------


def run(settings: Settings, args: argparse.Namespace) -> int:
    quick = bool(args.quick)
    suite = str(args.suite)
    if suite not in {"stages", "e2e", "all", "profile", "rss"}:
        print(f"unknown suite {suite!r}; one of stages, e2e, all, profile, rss")
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_for(suite, quick)
    model_dir = bench_model_dir(args, quick)
    version_dir = ensure_model(settings, model_dir, quick)
    settings = settings.model_copy(
        update={"model_dir": model_dir.resolve(), "model_version": version_dir.name}
    )
    report = Report(
        machine=machine_info(),
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        quick=quick,
        model=model_summary(version_dir),
        load_before=load_average(),
    )
    report.notes.append(f"suite {suite}; figures from {version_dir}")
    if plan.stages:
        stages.run_stages(settings, version_dir, report, quick=quick)
    if plan.passthrough or plan.worker or plan.naive:
        asyncio.run(run_e2e(settings, plan, report, out, quick=quick))
    report.load_after = load_average()
    report.finished_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    targets.evaluate(report)
    write_outputs(report, out, suite=suite)
    print(render_markdown(report))
    return 0


def model_summary(version_dir: Path) -> dict[str, object]:
    try:
        meta = json.loads((version_dir / "metadata.json").read_text())
    except (OSError, ValueError):
        meta = {}
    keep = ("version", "trees", "num_trees", "leaves", "num_leaves", "features", "ndcg_at_10")
    found: dict[str, object] = {"version": version_dir.name}
    for key in keep:
        if key in meta and not isinstance(meta[key], (dict, list)):
            found[key] = meta[key]
    return found


async def run_e2e(settings: Settings, plan: Plan, report: Report, out: Path, quick: bool) -> None:
    pin_harness()
    sessions, source = bench_sessions(settings, limit=None if not quick else 2000)
    report.notes.append(f"replayed sessions: {source}")
    logs = out / "logs"
    shown: Callable[[E2EResult], None] = lambda r: log.info(  # noqa: E731
        "%s %s: %.0f ev/s p99 %s ms", r.impl, r.label, r.sustained_eps, r.p99_ms
    )
    for impl, steps in (
        (e2e.PASSTHROUGH, plan.passthrough),
        (e2e.WORKER, plan.worker),
        (e2e.NAIVE, plan.naive),
    ):
        if not steps:
            continue
        config = e2e.RunConfig(steps=steps, warmup_events=plan.warmup_events)
        try:
            results = await e2e.run_impl(
                settings=settings,
                impl=impl,
                sessions=sessions,
                config=config,
                log_dir=logs,
                on_step=shown,
            )
        except (e2e.BenchError, subprocess.CalledProcessError) as exc:
            report.notes.append(f"{impl.name}: FAILED: {str(exc)[:2000]}")
            log.error("%s failed: %s", impl.name, exc)
            continue
        report.e2e.extend(results)
    if plan.profile_seconds > 0:
        await profile.profile_worker(settings, sessions, report, out, plan.profile_seconds)


def pin_harness() -> None:
    """Keep the harness (producer, reader) off the core the process under test runs on."""
    cpus = os.cpu_count() or 1
    if cpus > 1 and hasattr(os, "sched_setaffinity"):
        others = set(range(cpus)) - {BENCH_CPU}
        os.sched_setaffinity(0, others)


def write_outputs(report: Report, out: Path, suite: str) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    write_json(report, out / f"results-{suite}-{stamp}.json")
    write_json(report, out / "results.json")
    table = render_markdown(report)
    (out / "results.md").write_text(table)
    write_chart(report, out / "latency-throughput.png")
    if not report.quick and suite == "all":
        COMMITTED_TABLE.write_text(table)
