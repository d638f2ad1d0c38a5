"""The benchmark result schema and its three renderings: JSON, a Markdown table and a PNG chart.

Every figure is reported next to the limit it is compared with, measured in the same run, so a
reader sees both the number and how close it is to what the machine allows.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

#: Shown where a figure was not measured.
MISSING = "n/a"


@dataclass(frozen=True)
class StageResult:
    """One stage benchmark: a rate next to the limit it is compared with."""

    stage: str  # "ranker" | "features" | "rows"
    name: str  # what was measured, e.g. "onnxruntime, as in the stream"
    variant: str  # e.g. "200 rows/call", "per event"
    per_call_ms: float | None
    rate: float
    rate_unit: str  # "rows/s" | "events/s"
    limit_name: str
    limit_rate: float

    @property
    def ratio(self) -> float:
        return self.rate / self.limit_rate if self.limit_rate > 0 else float("nan")


@dataclass(frozen=True)
class E2EResult:
    """One end-to-end run of one implementation at one offered rate (None: as fast as possible)."""

    impl: str  # "worker" | "naive" | "passthrough"
    offered_rate: float | None
    produced: int
    answered: int  # output messages matched to a produced event
    duration_s: float
    sustained_eps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cpu_ms_per_event: float | None
    cpu_util: float | None  # CPU seconds of the process per wall second (1.0 = one full core)
    rss_mb_start: float | None
    rss_mb_end: float | None
    inference_share: float | None = None  # share of the process's CPU spent in ranker calls
    note: str = ""
    rss_mb_max: float | None = None
    mean_batch: float | None = None  # events per worker batch (from the worker's metrics)
    rss_mb_per_minute: tuple[float, ...] = ()  # RSS at each whole minute of long runs

    @property
    def per_core_eps(self) -> float | None:
        """Events per CPU-second of the process: what it would sustain with a whole core."""
        return 1000.0 / self.cpu_ms_per_event if self.cpu_ms_per_event else None

    @property
    def label(self) -> str:
        return "max" if self.offered_rate is None else f"{self.offered_rate:g}/s"

    @property
    def kept_up(self) -> bool:
        """Sustained at least 95 % of the offered rate and answered (almost) every event."""
        if self.offered_rate is None:
            return self.answered > 0
        return self.sustained_eps >= 0.95 * self.offered_rate and self.answered >= 0.99 * (
            self.produced
        )


@dataclass(frozen=True)
class Limit:
    name: str
    value: float
    unit: str
    how: str


@dataclass(frozen=True)
class TargetCheck:
    name: str
    target: str  # human-readable, e.g. "p99 <= 10 ms at 200 events/s"
    measured: str  # human-readable figure
    ratio: float | None  # measured / threshold, oriented so that the target reads clearly
    met: bool | None  # None: not measured in this run


@dataclass(frozen=True)
class QualityPoint:
    """Ranking quality next to cost, for the configuration in use and any cheaper one tried."""

    config: str
    ndcg_at_10: float | None
    ms_per_track_start: float
    track_starts_per_s: float


@dataclass
class Report:
    machine: dict[str, Any]
    started_at: str
    quick: bool
    model: dict[str, Any] = field(default_factory=dict)
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    finished_at: str | None = None
    limits: list[Limit] = field(default_factory=list)
    stages: list[StageResult] = field(default_factory=list)
    e2e: list[E2EResult] = field(default_factory=list)
    targets: list[TargetCheck] = field(default_factory=list)
    quality: list[QualityPoint] = field(default_factory=list)
    profile: list[dict[str, Any]] = field(default_factory=list)
    profile_components: dict[str, float] = field(default_factory=dict)
    profile_rate: float | None = None  # events/s offered while profiling; None: max rate
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [{**asdict(s), "ratio": s.ratio} for s in self.stages]
        data["e2e"] = [{**asdict(r), "kept_up": r.kept_up} for r in self.e2e]
        return data

    def limit(self, name: str) -> Limit | None:
        return next((lim for lim in self.limits if lim.name == name), None)


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2, allow_nan=False, default=_nan_safe))


def _nan_safe(value: object) -> object:  # pragma: no cover - only for exotic values
    return str(value)


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return MISSING
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


QUICK_NOTE = " (quick harness check, not a measurement)"


def render_markdown(report: Report) -> str:
    """The results as Markdown: machine, targets, stages, end to end, quality, profile."""
    m = report.machine
    load = report.load_before
    lines = [
        "# nowplaying benchmark results",
        "",
        f"Run {report.started_at}{QUICK_NOTE if report.quick else ''}"
        f" on {m.get('cpu_model', '?')}, {m.get('cpus', '?')} cores, "
        f"{_fmt(m.get('ram_gib'))} GiB RAM, {m.get('os', '?')}; Python {m.get('python', '?')}.",
        f"Load average before the run: {', '.join(f'{x:.2f}' for x in load) if load else '?'}; "
        f"after: {', '.join(f'{x:.2f}' for x in report.load_after) if report.load_after else '?'}.",
    ]
    versions = m.get("versions", {})
    if versions:
        lines.append(
            "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "."
        )
    if report.model:
        lines.append(
            "Model: "
            + ", ".join(f"{k} {v}" for k, v in report.model.items() if v is not None)
            + "."
        )
    if report.targets:
        lines += ["", "## Targets", ""]
        lines += _table(
            ["target", "measured", "ratio", "met"],
            [
                [
                    t.target,
                    t.measured,
                    _fmt(t.ratio, 2),
                    "yes" if t.met else ("no" if t.met is False else MISSING),
                ]
                for t in report.targets
            ],
        )
    if report.limits:
        lines += ["", "## Limits measured in this run", ""]
        lines += _table(
            ["limit", "value", "how"],
            [[lim.name, f"{_fmt(lim.value)} {lim.unit}", lim.how] for lim in report.limits],
        )
    if report.stages:
        lines += [
            "",
            "## Stage benchmarks (one core)",
            "",
            "ms/call: CPU time for the ranker and row stages (single-threaded, CPU-bound code),"
            " wall time for the Redis round trips.",
            "",
        ]
        lines += _table(
            ["stage", "what", "variant", "ms/call", "rate", "limit", "ratio"],
            [
                [
                    s.stage,
                    s.name,
                    s.variant,
                    _fmt(s.per_call_ms, 3),
                    f"{_fmt(s.rate)} {s.rate_unit}",
                    f"{s.limit_name} ({_fmt(s.limit_rate)})",
                    _fmt(s.ratio, 2),
                ]
                for s in report.stages
            ],
        )
    if report.e2e:
        lines += ["", "## End to end (real broker and Redis, process pinned to one core)", ""]
        lines += _table(
            [
                "implementation",
                "offered",
                "sustained ev/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "CPU ms/event",
                "ev/s per core",
                "core use",
                "ranker share",
                "events/batch",
                "RSS MiB start→end",
                "kept up",
            ],
            [
                [
                    r.impl,
                    r.label,
                    _fmt(r.sustained_eps, 0),
                    _fmt(r.p50_ms),
                    _fmt(r.p95_ms),
                    _fmt(r.p99_ms),
                    _fmt(r.cpu_ms_per_event, 3),
                    _fmt(r.per_core_eps, 0),
                    _fmt(r.cpu_util, 2),
                    _fmt(r.inference_share, 2),
                    _fmt(r.mean_batch, 0),
                    f"{_fmt(r.rss_mb_start, 0)}→{_fmt(r.rss_mb_end, 0)}",
                    "yes" if r.kept_up else "no",
                ]
                for r in report.e2e
            ],
        )
    if report.quality:
        lines += ["", "## Ranking quality next to cost", ""]
        lines += _table(
            ["configuration", "NDCG@10", "ms per track start", "track starts/s (one core)"],
            [
                [
                    q.config,
                    _fmt(q.ndcg_at_10, 4),
                    _fmt(q.ms_per_track_start, 3),
                    _fmt(q.track_starts_per_s, 0),
                ]
                for q in report.quality
            ],
        )
    if report.profile_components:
        lines += ["", f"## Worker CPU by component {_profiled_at(report)} (py-spy samples)", ""]
        waiting = sum(p for n, p in report.profile_components.items() if "select" in n)
        busy = 100.0 - waiting
        lines += _table(
            ["component", "share of samples %", "share of busy samples %"],
            [
                [name, _fmt(pct), "" if "select" in name or busy <= 0 else _fmt(100 * pct / busy)]
                for name, pct in report.profile_components.items()
            ],
        )
    if report.profile:
        lines += ["", f"## Worker profile {_profiled_at(report)}: top functions by own samples", ""]
        lines += _table(
            ["function", "self %", "total %"],
            [
                [str(p["function"]), _fmt(p["self_pct"]), _fmt(p["total_pct"])]
                for p in report.profile
            ],
        )
    if report.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def write_chart(report: Report, path: Path) -> bool:
    """p99 latency against sustained throughput per implementation, with the limits as lines.

    Returns False (and writes nothing) when the report has no end-to-end runs.
    """
    runs = [r for r in report.e2e if r.p99_ms is not None]
    if not runs:
        return False
    fig = Figure(figsize=(9, 5.5), dpi=110)
    ax = fig.subplots()
    for impl in sorted({r.impl for r in runs}):
        pts = sorted((r.sustained_eps, r.p99_ms or 0.0) for r in runs if r.impl == impl)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{impl} p99")
    for lim, style in (("inference-only limit", "--"), ("aiokafka passthrough", ":")):
        found = report.limit(lim)
        if found is not None and found.value > 0:
            ax.axvline(found.value, linestyle=style, color="grey", label=f"{lim}")
    for y in (10.0, 25.0):
        ax.axhline(y, linewidth=0.6, color="red", alpha=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("sustained events/s (one worker core)")
    ax.set_ylabel("event → recommendation p99, ms (log)")
    ax.set_title(f"nowplaying end to end, {report.started_at}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return True


def _profiled_at(report: Report) -> str:
    rate = report.profile_rate
    return "at max rate" if rate is None else f"at {rate:g} events/s"
