"""The product targets, checked against the figures of one run (never in tests)."""

from __future__ import annotations

from collections.abc import Sequence

from devtools.bench.report import E2EResult, Limit, Report, TargetCheck

INFERENCE_LIMIT = "inference-only limit"
PASSTHROUGH_LIMIT = "aiokafka passthrough"
FLOOR_PER_START = "ranker floor per track start"
THROUGHPUT_SHARE = 0.8
NON_RANKER_SHARE = 0.25
P99_TARGETS = ((200.0, 10.0), (700.0, 25.0))
#: At 200 events/s, p99 also within this of the raw aiokafka passthrough's p99 at that rate.
P99_OVER_PASSTHROUGH_MS = {200.0: 5.0}
#: CPU per event at a low rate: the fixed cost per batch.
CPU_TARGET = (200.0, 1.0)  # (events/s, ms per event)
P50_TARGET = (500.0, 8.0)  # (events/s, ms)
NAIVE_FACTOR = 10.0
#: The two-worker run (two processes of one group, one core each).
PAIR = "2 workers"
EQUAL_P99_MS = 25.0
RSS_RATE = 500.0
RSS_MIN_SECONDS = 300.0
RSS_TOLERANCE = 0.05
#: Every play is one track_start and one track_end.
EVENTS_PER_START = 2.0


def _max_run(runs: Sequence[E2EResult], impl: str) -> E2EResult | None:
    found = [r for r in runs if r.impl == impl and r.offered_rate is None]
    return found[-1] if found else None


def _at_rate(runs: Sequence[E2EResult], impl: str, rate: float) -> E2EResult | None:
    found = [r for r in runs if r.impl == impl and r.offered_rate == rate]
    return found[-1] if found else None


def best_rate_within(runs: Sequence[E2EResult], impl: str, p99_ms: float) -> float | None:
    """The highest sustained events/s among the impl's runs that kept up with p99 <= bound."""
    ok = [
        r.sustained_eps
        for r in runs
        if r.impl == impl and r.p99_ms is not None and r.p99_ms <= p99_ms and r.kept_up
    ]
    return max(ok) if ok else None


def ranker_share(report: Report, run: E2EResult | None) -> float | None:
    """Share of the worker's CPU that the ranker's own work accounts for: the floor's CPU time
    per track start (ranker stage, same run) times track starts per event, over the worker's
    CPU per event. Falls back to the worker's inference metric (wall clock, so it overstates
    the ranker on a busy machine) when the stage did not run."""
    if run is None:
        return None
    floor = report.limit(FLOOR_PER_START)
    if floor is not None and floor.value > 0 and run.cpu_ms_per_event:
        ranker_ms_per_event = 1000.0 / floor.value / EVENTS_PER_START
        return min(ranker_ms_per_event / run.cpu_ms_per_event, 1.0)
    return run.inference_share


def passthrough_limit(report: Report) -> None:
    run = _max_run(report.e2e, "passthrough")
    if run is not None and report.limit(PASSTHROUGH_LIMIT) is None:
        report.limits.append(
            Limit(
                PASSTHROUGH_LIMIT,
                run.sustained_eps,
                "events/s",
                "raw aiokafka consume + produce of every event, one core, max rate",
            )
        )


def evaluate(report: Report) -> None:
    """Append one TargetCheck per target; figures not measured in this run read as not met."""
    passthrough_limit(report)
    runs = report.e2e
    checks: list[TargetCheck] = []
    limit = report.limit(INFERENCE_LIMIT)
    worker_max = _max_run(runs, "worker")
    if limit is not None and worker_max is not None:
        ratio = worker_max.sustained_eps / limit.value
        measured = f"{worker_max.sustained_eps:,.0f} ev/s vs limit {limit.value:,.0f} ev/s"
        checks.append(
            TargetCheck(
                f"worker max >= {THROUGHPUT_SHARE} x inference-only limit",
                f"worker max >= {THROUGHPUT_SHARE} x inference-only limit",
                measured,
                ratio / THROUGHPUT_SHARE,
                ratio >= THROUGHPUT_SHARE,
            )
        )
    per_core = worker_max.per_core_eps if worker_max is not None else None
    if limit is not None and per_core is not None:
        ratio = per_core / limit.value
        checks.append(
            TargetCheck(
                f"worker per core >= {THROUGHPUT_SHARE} x inference-only limit",
                f"same, CPU-normalised: events per worker CPU-second >= {THROUGHPUT_SHARE} x "
                "inference-only limit",
                f"{per_core:,.0f} ev/s per core vs limit {limit.value:,.0f} ev/s",
                ratio / THROUGHPUT_SHARE,
                ratio >= THROUGHPUT_SHARE,
            )
        )
    share = ranker_share(report, worker_max)
    if share is not None:
        other = 1.0 - share
        wall = worker_max.inference_share if worker_max is not None else None
        checks.append(
            TargetCheck(
                "non-ranker CPU share",
                f"all but the ranker <= {NON_RANKER_SHARE:.0%} of worker CPU (max rate)",
                f"{other:.0%} (ranker {share:.0%} by CPU"
                + (f"; {wall:.0%} by the worker's wall-clock inference metric)" if wall else ")"),
                other / NON_RANKER_SHARE,
                other <= NON_RANKER_SHARE,
            )
        )
    for rate, stated in P99_TARGETS:
        bound = stated
        run = _at_rate(runs, "worker", rate)
        if run is None:
            continue
        p99 = run.p99_ms
        measured = "not measured" if p99 is None else f"{p99:.1f} ms (kept up: {run.kept_up})"
        floor = _at_rate(runs, "passthrough", rate)
        target = f"p99 <= {stated:g} ms at {rate:g} events/s"
        over = P99_OVER_PASSTHROUGH_MS.get(rate)
        if floor is not None and floor.p99_ms is not None:
            measured += f"; raw aiokafka passthrough at {rate:g}/s: p99 {floor.p99_ms:.1f} ms"
            if over is not None:
                bound = min(bound, floor.p99_ms + over)
                target += f" and <= passthrough + {over:g} ms"
        checks.append(
            TargetCheck(
                f"p99 at {rate:g}",
                target,
                measured,
                None if p99 is None else p99 / bound,
                None if p99 is None else (p99 <= bound and run.kept_up),
            )
        )
    _low_rate_checks(runs, checks)
    _naive_check(runs, checks)
    _rss_check(runs, checks)
    pair = scaling_figure(runs)
    if pair is not None:
        checks.append(pair)
    report.targets.extend(checks)


def _low_rate_checks(runs: Sequence[E2EResult], checks: list[TargetCheck]) -> None:
    """CPU per event at a low rate (the fixed cost per batch) and p50 at a moderate one."""
    rate, bound = CPU_TARGET
    run = _at_rate(runs, "worker", rate)
    if run is not None and run.cpu_ms_per_event is not None:
        checks.append(
            TargetCheck(
                f"CPU per event at {rate:g}",
                f"CPU per event <= {bound:g} ms at {rate:g} events/s",
                f"{run.cpu_ms_per_event:.3f} ms (events per batch: {_fmt_batch(run)})",
                run.cpu_ms_per_event / bound,
                run.cpu_ms_per_event <= bound,
            )
        )
    rate, bound = P50_TARGET
    run = _at_rate(runs, "worker", rate)
    if run is not None and run.p50_ms is not None:
        checks.append(
            TargetCheck(
                f"p50 at {rate:g}",
                f"p50 <= {bound:g} ms at {rate:g} events/s",
                f"{run.p50_ms:.1f} ms (kept up: {run.kept_up})",
                run.p50_ms / bound,
                run.p50_ms <= bound and run.kept_up,
            )
        )


def _fmt_batch(run: E2EResult) -> str:
    return "n/a" if run.mean_batch is None else f"{run.mean_batch:.1f}"


def scaling_figure(runs: Sequence[E2EResult]) -> TargetCheck | None:
    """Two workers on two cores: their total rate at max over one worker's (a figure, not a
    target: met is None)."""
    one, two = _max_run(runs, "worker"), _max_run(runs, PAIR)
    if one is None or two is None or one.sustained_eps <= 0:
        return None
    ratio = two.sustained_eps / one.sustained_eps
    return TargetCheck(
        "two workers",
        "two workers on two cores: total rate / one worker's (a figure, not a target)",
        f"{two.sustained_eps:,.0f} vs {one.sustained_eps:,.0f} ev/s = {ratio:.2f}x "
        "(the harness shares the second core)",
        ratio,
        None,
    )


def _naive_check(runs: Sequence[E2EResult], checks: list[TargetCheck]) -> None:
    worker = best_rate_within(runs, "worker", EQUAL_P99_MS)
    naive = best_rate_within(runs, "naive", EQUAL_P99_MS)
    if worker is not None and naive:
        ratio = worker / naive
        checks.append(
            TargetCheck(
                "vs naive at equal p99",
                f">= {NAIVE_FACTOR:g}x naive throughput at equal p99 (<= {EQUAL_P99_MS:g} ms)",
                f"{worker:,.0f} vs {naive:,.0f} ev/s = {ratio:.1f}x",
                ratio / NAIVE_FACTOR,
                ratio >= NAIVE_FACTOR,
            )
        )
    wmax, nmax = _max_run(runs, "worker"), _max_run(runs, "naive")
    if wmax is not None and nmax is not None and nmax.sustained_eps > 0:
        ratio = wmax.sustained_eps / nmax.sustained_eps
        checks.append(
            TargetCheck(
                "vs naive at max",
                f">= {NAIVE_FACTOR:g}x naive throughput at max rate",
                f"{wmax.sustained_eps:,.0f} vs {nmax.sustained_eps:,.0f} ev/s = {ratio:.1f}x",
                ratio / NAIVE_FACTOR,
                ratio >= NAIVE_FACTOR,
            )
        )


def _rss_check(runs: Sequence[E2EResult], checks: list[TargetCheck]) -> None:
    for run in runs:
        long_enough = run.duration_s >= RSS_MIN_SECONDS and run.offered_rate is not None
        if run.impl != "worker" or not long_enough:
            continue
        if run.rss_mb_start is None or run.rss_mb_end is None:
            continue
        change = run.rss_mb_end / run.rss_mb_start - 1.0
        minutes = ", ".join(f"{x:.0f}" for x in run.rss_mb_per_minute)
        checks.append(
            TargetCheck(
                "RSS flat",
                f"worker RSS flat (+/- {RSS_TOLERANCE:.0%}) over {run.duration_s / 60:.0f} min "
                f"at {run.offered_rate:g} events/s (target rate {RSS_RATE:g})",
                f"{run.rss_mb_start:.0f} -> {run.rss_mb_end:.0f} MiB ({change:+.1%}); "
                f"per minute: {minutes}; kept up: {run.kept_up}",
                abs(change) / RSS_TOLERANCE,
                abs(change) <= RSS_TOLERANCE,
            )
        )
