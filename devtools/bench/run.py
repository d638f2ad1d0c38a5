"""A benchmark run: stage and end-to-end benchmarks, next to their limits, in one run.

Suites: ``stages`` (ranker, feature store, feature rows), ``e2e`` (passthrough, worker, naive at
fixed rates and max), ``all`` (both, plus a py-spy profile of the worker at max rate), ``profile``
(only the profile), ``rss`` (the worker at 500 events/s for 10 minutes, RSS over time).

Results go to ``--out`` (default ``devtools/bench/results``, git-ignored):
``results-<stamp>.json``, ``results.md``, ``latency-throughput.png``, the processes' logs;
``devtools/bench/RESULTS.md`` gets a copy of the table after a full (not ``--quick``) run
(``RESULTS-rss.md`` after a full ``rss`` run). Every path is the repository's, whatever the
working directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from devtools.bench import e2e, profile, quality, ranker, stages, targets
from devtools.bench.machine import load_average, machine_info
from devtools.bench.model import (
    MAIN_MODEL,
    QUICK_MODEL,
    bench_model_dir,
    ensure_model,
    model_summary,
    quality_configs,
)
from devtools.bench.report import E2EResult, Report, render_markdown, write_chart, write_json
from devtools.bench.timing import BENCH_CPU, on_bench_core
from devtools.bench.workload import bench_sessions
from devtools.paths import REPO_ROOT, shown
from nowplaying.settings import Settings

log = logging.getLogger("bench")

SUITES: Final = ("all", "stages", "e2e", "profile", "rss")
RATES = (200.0, 500.0, 700.0, 1000.0, 2000.0)
STEP_SECONDS = 20.0
MAX_EVENTS = 30_000
NAIVE_RATES = (100.0, 200.0, 350.0, 500.0)
RSS_SECONDS = 600.0
RSS_WARMUP_SECONDS = 180.0
#: The session cache bound for the RSS run: at 500 events/s about 14 new sessions start per
#: second, so 2,000 fill it within the warm-up step (the default, 20,000, takes ~25 minutes).
RSS_CACHE_SESSIONS = 2000
BENCH_DIR: Final = REPO_ROOT / "devtools" / "bench"
#: Where a run writes by default (git-ignored).
RESULTS_DIR: Final = BENCH_DIR / "results"
#: The latest full (not --quick) run's table, committed.
COMMITTED_TABLE: Final = BENCH_DIR / "RESULTS.md"
#: The latest full (not --quick) RSS run's table.
COMMITTED_RSS_TABLE: Final = BENCH_DIR / "RESULTS-rss.md"
#: Hand-written: what was changed to reach the targets, with before/after figures. Appended to
#: the committed table.
CHANGES: Final = BENCH_DIR / "CHANGES.md"


@dataclass(frozen=True)
class Plan:
    """Which runs a suite makes, and how big."""

    stages: bool
    passthrough: tuple[e2e.Step, ...]
    worker: tuple[e2e.Step, ...]
    naive: tuple[e2e.Step, ...]
    pair: tuple[e2e.Step, ...]  # two workers, two cores: the scaling figure
    profile_seconds: float  # 0: no profile
    profile_rate: float | None  # events/s offered while profiling; None: max rate
    warmup_events: int


def fixed(rates: tuple[float, ...], seconds: float) -> tuple[e2e.Step, ...]:
    return tuple(e2e.Step(r, int(r * seconds)) for r in rates)


def plan_for(
    suite: str, quick: bool, rss_rate: float = 0.0, profile_rate: float | None = None
) -> Plan:
    if quick:
        tiny = (e2e.Step(200.0, 200), e2e.Step(None, 500))
        return Plan(
            stages=suite in {"stages", "all"},
            # The passthrough spends ~0.03 ms of CPU per event at max rate: 5,000 events make
            # enough clock ticks of CPU time to measure.
            passthrough=(tiny[0], e2e.Step(None, 5000)) if suite in {"e2e", "all"} else (),
            worker=tiny if suite in {"e2e", "all", "rss"} else (),
            naive=(e2e.Step(50.0, 50), e2e.Step(None, 100)) if suite in {"e2e", "all"} else (),
            pair=(e2e.Step(None, 500),) if suite in {"e2e", "all"} else (),
            profile_seconds=3.0 if suite in {"all", "profile"} else 0.0,
            profile_rate=profile_rate,
            warmup_events=100,
        )
    e2e_on = suite in {"e2e", "all"}
    worker: tuple[e2e.Step, ...] = ()
    if e2e_on:
        worker = (*fixed(RATES, STEP_SECONDS), e2e.Step(None, MAX_EVENTS))
    elif suite == "rss":
        # A warm-up step fills the worker's session cache (RSS_CACHE_SESSIONS) first; the RSS
        # target is checked on the measured step after it.
        rate = rss_rate or targets.RSS_RATE
        worker = (
            e2e.Step(rate, int(rate * RSS_WARMUP_SECONDS)),
            e2e.Step(rate, int(rate * RSS_SECONDS)),
        )
    return Plan(
        stages=suite in {"stages", "all"},
        # At the latency targets' rates too: the Python client's own p99 there, for comparison.
        passthrough=(
            *fixed(tuple(r for r, _ in targets.P99_TARGETS), STEP_SECONDS),
            e2e.Step(2000.0, 40_000),
            e2e.Step(None, 60_000),
        )
        if e2e_on
        else (),
        worker=worker,
        naive=(*fixed(NAIVE_RATES, STEP_SECONDS), e2e.Step(None, 10_000)) if e2e_on else (),
        pair=(e2e.Step(None, MAX_EVENTS),) if e2e_on else (),
        profile_seconds=20.0 if suite in {"all", "profile"} else 0.0,
        profile_rate=profile_rate,
        warmup_events=2000,
    )


def needs_e2e(plan: Plan) -> bool:
    """Whether the plan runs anything on the broker (an end-to-end step or the profile)."""
    return bool(plan.passthrough or plan.worker or plan.naive or plan.pair or plan.profile_seconds)


# --- running ----------------------------------------------------------------------------------


def run(settings: Settings, args: argparse.Namespace) -> int:
    quick = bool(args.quick)
    suite = str(args.suite)
    if suite not in SUITES:
        print(f"unknown suite {suite!r}; one of {', '.join(SUITES)}")
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rss_rate = float(getattr(args, "rss_rate", None) or targets.RSS_RATE)
    profile_rate = getattr(args, "profile_rate", None)
    plan = plan_for(suite, quick, rss_rate, profile_rate)
    model_dir = bench_model_dir(args, quick)
    version_dir = ensure_model(settings, model_dir, QUICK_MODEL if quick else MAIN_MODEL)
    settings = settings.model_copy(
        update={"model_dir": model_dir.resolve(), "model_version": version_dir.name}
    )
    if suite == "rss":
        settings = settings.model_copy(update={"session_cache_sessions": RSS_CACHE_SESSIONS})
    report = Report(
        machine=machine_info(),
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        quick=quick,
        model=model_summary(version_dir),
        load_before=load_average(),
    )
    report.notes.append(f"suite {suite}; figures from {shown(version_dir)}")
    if suite == "rss":
        report.notes.append(
            f"rss: worker session cache bounded to {RSS_CACHE_SESSIONS} sessions "
            f"(NP_SESSION_CACHE_SESSIONS) so that a {RSS_WARMUP_SECONDS:.0f} s warm-up step at "
            f"{rss_rate:g} events/s fills it; the RSS target is checked on the "
            f"{RSS_SECONDS / 60:.0f}-minute step after it"
        )
    states = stages.sample_states(settings, 200 if quick else 2000)
    if plan.stages:
        stages.run_stages(settings, version_dir, states, report, quick=quick)
        quality.quality_stage(
            settings,
            quality_configs(
                settings, version_dir, quick, bool(getattr(args, "small_model", False))
            ),
            states,
            report,
            quick,
        )
    else:
        with on_bench_core():  # the inference-only limit, for the targets
            ranker.ranker_stage(settings, version_dir, states, report, quick)
    if needs_e2e(plan):
        asyncio.run(run_e2e(settings, plan, report, out, quick=quick))
    report.load_after = load_average()
    report.finished_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    targets.evaluate(report)
    write_outputs(report, out, suite=suite)
    print(render_markdown(report))
    return 0


async def run_e2e(settings: Settings, plan: Plan, report: Report, out: Path, quick: bool) -> None:
    with harness_cores():
        await _run_e2e(settings, plan, report, out, quick)


async def _run_e2e(settings: Settings, plan: Plan, report: Report, out: Path, quick: bool) -> None:
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
        (e2e.WORKER_PAIR, plan.pair),
    ):
        if not steps:
            continue
        config = e2e.RunConfig(
            steps=steps,
            warmup_events=plan.warmup_events,
            always_rates=tuple(rate for rate, _ in targets.P99_TARGETS),
        )
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
        await profile.profile_worker(
            settings, sessions, report, out, plan.profile_seconds, rate=plan.profile_rate
        )


@contextlib.contextmanager
def harness_cores() -> Iterator[None]:
    """Keep the harness (producer, reader) off the core the process under test runs on."""
    cpus = os.cpu_count() or 1
    if cpus < 2 or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(range(cpus)) - {BENCH_CPU})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def write_outputs(report: Report, out: Path, suite: str) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    write_json(report, out / f"results-{suite}-{stamp}.json")
    write_json(report, out / "results.json")
    table = render_markdown(report)
    (out / "results.md").write_text(table)
    write_chart(report, out / "latency-throughput.png")
    if not report.quick and suite == "rss":
        COMMITTED_RSS_TABLE.write_text(table)
    if not report.quick and suite == "all":
        changes = CHANGES.read_text() if CHANGES.exists() else ""
        COMMITTED_TABLE.write_text(table + ("\n" + changes if changes else ""))
