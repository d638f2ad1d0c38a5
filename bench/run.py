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
import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import e2e, profile, quality, ranker, stages, targets
from bench.machine import load_average, machine_info
from bench.report import E2EResult, Report, render_markdown, write_chart, write_json
from bench.timing import BENCH_CPU, on_bench_core
from bench.workload import bench_sessions
from models.datasets import MSSD_FILE
from models.recommender import ModelMismatchError, check_metadata
from models.registry import LIGHTGBM_FILE, METADATA_FILE, ModelNotFoundError, resolve_version_dir
from models.train import TrainConfig
from nowplaying.settings import Settings

log = logging.getLogger("bench")

RATES = (200.0, 500.0, 700.0, 1000.0, 2000.0)
STEP_SECONDS = 20.0
MAX_EVENTS = 30_000
NAIVE_RATES = (100.0, 200.0, 350.0, 500.0)
RSS_RATE = 500.0
RSS_SECONDS = 600.0
RSS_WARMUP_SECONDS = 180.0
#: The session cache bound for the RSS run: at 500 events/s about 14 new sessions start per
#: second, so 2,000 fill it within the warm-up step (the default, 20,000, takes ~25 minutes).
RSS_CACHE_SESSIONS = 2000
COMMITTED_TABLE = Path(__file__).with_name("RESULTS.md")
#: The latest full (not --quick) RSS run's table.
COMMITTED_RSS_TABLE = Path(__file__).with_name("RESULTS-rss.md")
#: Hand-written: what was changed to reach the targets, with before/after figures. Appended to
#: the committed table.
CHANGES = Path(__file__).with_name("CHANGES.md")


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


def plan_for(suite: str, quick: bool, rss_rate: float = 0.0) -> Plan:
    if quick:
        tiny = (e2e.Step(200.0, 200), e2e.Step(None, 500))
        return Plan(
            stages=suite in {"stages", "all"},
            passthrough=tiny if suite in {"e2e", "all"} else (),
            worker=tiny if suite in {"e2e", "all", "rss"} else (),
            naive=(e2e.Step(50.0, 50), e2e.Step(None, 100)) if suite in {"e2e", "all"} else (),
            profile_seconds=3.0 if suite in {"all", "profile"} else 0.0,
            warmup_events=100,
        )
    e2e_on = suite in {"e2e", "all"}
    worker: tuple[e2e.Step, ...] = ()
    if e2e_on:
        worker = (*fixed(RATES, STEP_SECONDS), e2e.Step(None, MAX_EVENTS))
    elif suite == "rss":
        # A warm-up step fills the worker's session cache (RSS_CACHE_SESSIONS) first; the RSS
        # target is checked on the measured step after it.
        rate = rss_rate or RSS_RATE
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
        profile_seconds=20.0 if suite in {"all", "profile"} else 0.0,
        warmup_events=2000,
    )


# --- the model ------------------------------------------------------------------------------


def bench_model_dir(args: argparse.Namespace, quick: bool) -> Path:
    given: Path | None = getattr(args, "model_dir", None)
    if given is not None:
        return given
    return Path("var") / ("bench-models-quick" if quick else "bench-models")


@dataclass(frozen=True)
class ModelSpec:
    trees: int
    leaves: int
    sessions: int | None = None  # None: all sessions of the data
    #: 0: all ``trees`` rounds are kept (the throughput target is stated for a 200-tree model,
    #: and early stopping would leave fewer, cheaper trees).
    early_stopping_rounds: int = TrainConfig.early_stopping_rounds


MAIN_MODEL = ModelSpec(200, 31, early_stopping_rounds=0)
SMALL_MODEL = ModelSpec(50, 15)
QUICK_MODEL = ModelSpec(20, 15, sessions=400)


def usable_model(model_dir: Path, spec: ModelSpec) -> Path | None:
    """The registry's latest version when it was trained as ``spec`` for this code's features."""
    try:
        version_dir = resolve_version_dir(model_dir)
        meta = json.loads((version_dir / METADATA_FILE).read_text())
        check_metadata(meta)
    except (ModelNotFoundError, ModelMismatchError, OSError, ValueError):
        return None
    params = meta.get("params", {})
    if (params.get("trees"), params.get("leaves")) != (spec.trees, spec.leaves):
        return None
    if params.get("early_stopping_rounds", TrainConfig.early_stopping_rounds) != (
        spec.early_stopping_rounds
    ):
        return None
    return version_dir if (version_dir / LIGHTGBM_FILE).is_file() else None


def ensure_model(settings: Settings, model_dir: Path, spec: ModelSpec) -> Path:
    """A model version trained as ``spec`` in ``model_dir``, trained first when there is none
    (on the real data when present, else on the SYNTHETIC sessions)."""
    found = usable_model(model_dir, spec)
    if found is not None:
        return found
    cmd = [e2e.nowplaying_exe(), "train", "--out", str(model_dir), "--no-progress"]
    cmd += ["--trees", str(spec.trees), "--leaves", str(spec.leaves)]
    cmd += ["--early-stopping-rounds", str(spec.early_stopping_rounds)]
    if spec.sessions is not None:
        cmd += ["--sessions", str(spec.sessions)]
    if not data_present(settings):
        cmd.append("--synthetic")
    log.warning("training a benchmark model: %s", " ".join(cmd))
    subprocess.run(cmd, check=True, timeout=3600, stdout=subprocess.DEVNULL)
    return resolve_version_dir(model_dir)


def quality_configs(
    settings: Settings, version_dir: Path, quick: bool, small_model: bool
) -> list[tuple[str, Path, int]]:
    """The configuration in use first, then cheaper ones: fewer candidates, and a smaller model
    when asked for (``--small-model``: trained once, ~3 minutes) or already trained."""
    n = settings.candidates
    main = model_label(version_dir)
    configs = [
        (f"{main}, {n} candidates (in use)", version_dir, n),
        (f"{main}, {n // 2} candidates", version_dir, n // 2),
        (f"{main}, {n // 4} candidates", version_dir, n // 4),
    ]
    small_registry = Path("var") / "bench-models-small"
    if not quick and (small_model or usable_model(small_registry, SMALL_MODEL) is not None):
        small_dir = ensure_model(settings, small_registry, SMALL_MODEL)
        configs.append((f"{model_label(small_dir)}, {n} candidates", small_dir, n))
    return configs


def model_label(version_dir: Path) -> str:
    """``134 trees (200, early-stopped) / 31 leaves``: the trees the model really has."""
    summary = model_summary(version_dir)
    meta = json.loads((version_dir / METADATA_FILE).read_text())
    asked = meta.get("params", {}).get("trees")
    trees = summary.get("trees") or asked
    stopped = f" ({asked}, early-stopped)" if asked and trees != asked else ""
    return f"{trees} trees{stopped} / {summary.get('leaves')} leaves"


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
    rss_rate = float(getattr(args, "rss_rate", None) or RSS_RATE)
    plan = plan_for(suite, quick, rss_rate)
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
    report.notes.append(f"suite {suite}; figures from {version_dir}")
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
    if plan.passthrough or plan.worker or plan.naive:
        asyncio.run(run_e2e(settings, plan, report, out, quick=quick))
    report.load_after = load_average()
    report.finished_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    targets.evaluate(report)
    write_outputs(report, out, suite=suite)
    print(render_markdown(report))
    return 0


def model_summary(version_dir: Path) -> dict[str, object]:
    """What the report says about the model: version, trees (after early stopping), leaves,
    NDCG@10 of its offline evaluation."""
    try:
        meta = json.loads((version_dir / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {"version": version_dir.name}
    params = meta.get("params", {})
    ndcg = meta.get("metrics", {}).get("ndcg_at_10", {})
    return {
        "version": version_dir.name,
        "trees": meta.get("model", {}).get("best_iteration"),
        "leaves": params.get("leaves"),
        "candidates": params.get("candidates"),
        "NDCG@10": round(ndcg["ranker"], 4) if "ranker" in ndcg else None,
        "data": meta.get("data", {}).get("description"),
    }


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
        await profile.profile_worker(settings, sessions, report, out, plan.profile_seconds)


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
