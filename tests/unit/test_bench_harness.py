"""The benchmark harness's pure parts: latency maths, /proc parsing, workload order, reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devtools.bench.e2e import rss_per_minute
from devtools.bench.latency import (
    Answer,
    answered_event_id,
    latencies_ms,
    latency_stats,
    percentile,
    sustained_rate,
)
from devtools.bench.procs import (
    ProcSample,
    parse_stat_cpu_seconds,
    parse_status_rss_mb,
    pinned_command,
    sample,
)
from devtools.bench.profile import OTHER, components, frame_name, summarise
from devtools.bench.redis_baseline import parse_csv_rps, redis_host_port
from devtools.bench.report import (
    E2EResult,
    Limit,
    Report,
    StageResult,
    render_markdown,
    write_chart,
)
from devtools.bench.targets import (
    FLOOR_PER_START,
    INFERENCE_LIMIT,
    NON_RANKER_SHARE,
    THROUGHPUT_SHARE,
    best_rate_within,
    evaluate,
    ranker_share,
)
from devtools.bench.worker_metrics import metric_deltas, parse_metrics
from devtools.bench.workload import build_workload
from models.datasets import synthetic_sessions


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latencies_match_answers_to_their_events_once() -> None:
    sent = {"a": 1000, "b": 1005}
    answers = [Answer("a", 1003), Answer("b", 1020), Answer("a", 1100), Answer("zzz", 1)]
    assert latencies_ms(sent, answers) == [3.0, 15.0]
    stats = latency_stats([3.0, 15.0])
    assert (stats.matched, stats.p50_ms, stats.max_ms) == (2, 3.0, 15.0)
    assert latency_stats([]).p99_ms is None


def test_answered_event_id_reads_recommendations_and_copied_events() -> None:
    assert answered_event_id(b'{"trigger_event_id": "e1", "event_id": "x"}') == "e1"
    assert answered_event_id(b'{"event_id": "e2"}') == "e2"
    assert answered_event_id(b"not json") is None
    assert answered_event_id(b"[1, 2]") is None


def test_sustained_rate_scales_answers_to_events() -> None:
    # 11 answers over one second, each standing for two events (a start and an end).
    answers = [Answer(str(i), 1000 + 100 * i) for i in range(11)]
    assert sustained_rate(answers, 2.0) == pytest.approx(20.0)
    assert sustained_rate(answers[:1], 2.0) == 0.0


def test_proc_stat_parsing_survives_odd_command_names() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S"] + ["0"] * 10 + [str(3 * ticks), str(ticks)] + ["0"] * 30
    line = "123 (we ird) name)) " + " ".join(fields)
    assert parse_stat_cpu_seconds(line) == pytest.approx(4.0)
    assert parse_status_rss_mb("Name: x\nVmRSS:\t  2048 kB\n") == 2.0


def test_sampling_this_process_sees_cpu_and_memory() -> None:
    s = sample(os.getpid())
    assert s is not None and s.rss_mb > 1.0 and s.cpu_s > 0.0
    assert sample(2**22 + 12345) is None


def test_pinned_command_uses_taskset_only_for_an_existing_core() -> None:
    assert pinned_command(["x"], None) == ["x"]
    assert pinned_command(["x"], 10_000) == ["x"]
    if (os.cpu_count() or 1) > 1:
        assert pinned_command(["x", "y"], 1)[-2:] == ["x", "y"]


def test_worker_metrics_are_summed_over_labels_and_differenced() -> None:
    text = (
        "# HELP nowplaying_batch_events x\n"
        "nowplaying_batch_events_count 4.0\n"
        "nowplaying_batch_events_sum 400.0\n"
        'nowplaying_inference_seconds_sum{a="1"} 0.5\n'
        'nowplaying_inference_seconds_sum{a="2"} 0.25\n'
        "nowplaying_inference_seconds_sum_extra 9\n"
    )
    names = ("nowplaying_batch_events_sum", "nowplaying_inference_seconds_sum", "absent")
    found = parse_metrics(text, names)
    assert found == {"nowplaying_batch_events_sum": 400.0, "nowplaying_inference_seconds_sum": 0.75}
    assert metric_deltas({"a": 1.0, "b": 2.0}, {"a": 4.0, "c": 1.0}) == {"a": 3.0}


def test_rss_per_minute_only_for_long_runs() -> None:
    short = [ProcSample(float(t), 0.0, 100.0 + t) for t in range(0, 100, 10)]
    assert rss_per_minute(short) == ()
    long = [ProcSample(float(t), 0.0, 100.0 + t) for t in range(0, 190, 10)]
    assert rss_per_minute(long) == (100.0, 160.0, 220.0, 280.0)


def test_the_workload_mixes_starts_and_ends_like_unsynchronised_listeners() -> None:
    """Every window of the replay holds starts and ends alike (no seconds of starts only), each
    session's events stay in order, and the order is the same every run."""
    sessions = synthetic_sessions(300, seed=5)
    events = build_workload(sessions, 6000, tag="t", concurrent=200)
    # (The first window leans to starts: every session begins with one.)
    shares = [sum(e.is_start for e in events[i : i + 200]) / 200 for i in range(200, 6000, 200)]
    assert min(shares) > 0.35 and max(shares) < 0.65
    by_session: dict[bytes, list[str]] = {}
    for e in events:
        by_session.setdefault(e.key, []).append(json.loads(e.value)["event_type"])
    assert all(types[0] == "track_start" for types in by_session.values())
    again = build_workload(sessions, 6000, tag="t", concurrent=200)
    assert [e.event_id for e in again] == [e.event_id for e in events]


def test_redis_benchmark_csv_and_url_parsing() -> None:
    out = '"test","rps","avg_latency_ms"\n"SET","123456.78","0.1"\n'
    assert parse_csv_rps(out) == pytest.approx(123456.78)
    with pytest.raises(ValueError):
        parse_csv_rps('"GET","1"\n')
    assert redis_host_port("redis://10.0.0.5:6380/0") == ("10.0.0.5", 6380)
    assert redis_host_port("redis://localhost") == ("localhost", 6379)


def test_profile_summary_counts_self_and_total_samples() -> None:
    lines = [
        "main (w.py:1);run (p.py:10);score (r.py:5) 6",
        "main (w.py:1);run (p.py:12);parse (e.py:3) 3",
        "main (w.py:1) 1",
        "garbage",
    ]
    shares = {s.function: s for s in summarise(lines)}
    assert shares["score (r.py)"].self_pct == pytest.approx(60.0)
    assert shares["main (w.py)"].total_pct == pytest.approx(100.0)
    assert shares["main (w.py)"].self_pct == pytest.approx(10.0)
    assert "run (p.py)" not in shares  # never on top of a stack
    assert frame_name("f (/x/site-packages/aiokafka/a.py:9)") == "f (aiokafka/a.py)"


def test_profile_components_go_by_the_innermost_known_frame() -> None:
    lines = [
        "run (mode/worker.py:1);process_batch (streams/pipeline.py:5);"
        "recommend (models/recommender.py:9);run (onnxruntime/capi/x.py:3) 5",
        "run (mode/worker.py:1);process_batch (streams/pipeline.py:5);"
        "rows_for (features/rows.py:7);dot (numpy/core.py:1) 3",
        "run (mode/worker.py:1);_run_once (asyncio/base_events.py:1) 2",
    ]
    shares = components(lines)
    assert shares["ranker: onnxruntime call"] == pytest.approx(50.0)
    assert shares["features: context, candidates, rows, top-k"] == pytest.approx(30.0)
    assert shares[OTHER] == pytest.approx(20.0)
    assert components([]) == {}


def _run(impl: str, rate: float | None, eps: float, p99: float, share: float | None) -> E2EResult:
    return E2EResult(
        impl=impl,
        offered_rate=rate,
        produced=1000,
        answered=1000,
        duration_s=10.0,
        sustained_eps=eps,
        p50_ms=p99 / 3,
        p95_ms=p99 / 2,
        p99_ms=p99,
        cpu_ms_per_event=0.5,
        cpu_util=0.5,
        rss_mb_start=100.0,
        rss_mb_end=101.0,
        inference_share=share,
    )


def _report() -> Report:
    report = Report(machine={"cpu_model": "Test CPU", "cpus": 2}, started_at="now", quick=False)
    report.limits.append(Limit(INFERENCE_LIMIT, 1400.0, "events/s", "floor"))
    report.stages.append(
        StageResult("ranker", "floor", "200 rows/call", 1.4, 140_000.0, "rows/s", "floor", 1.4e5)
    )
    report.e2e += [
        _run("worker", 200.0, 199.0, 8.0, None),
        _run("worker", 500.0, 499.0, 27.0, None),  # p50 9 ms
        _run("worker", 700.0, 699.0, 30.0, None),
        _run("worker", None, 1050.0, 400.0, 0.75),
        _run("2 workers", None, 1890.0, 500.0, None),
        _run("naive", 200.0, 199.0, 20.0, None),
        _run("naive", None, 100.0, 900.0, None),
        _run("passthrough", 700.0, 700.0, 12.0, None),
        _run("passthrough", None, 12_000.0, 60.0, None),
    ]
    return report


def test_targets_are_checked_against_the_runs() -> None:
    report = _report()
    evaluate(report)
    by_name = {t.name: t for t in report.targets}
    throughput = by_name[f"worker max >= {THROUGHPUT_SHARE} x inference-only limit"]
    assert throughput.met is False  # 0.75 of the limit
    assert throughput.ratio == pytest.approx(1050 / 1400 / THROUGHPUT_SHARE)
    assert by_name["non-ranker CPU share"].met is True
    assert by_name["p99 at 200"].met is True
    assert by_name["CPU per event at 200"].met is True  # 0.5 ms
    assert by_name["CPU per event at 200"].ratio == pytest.approx(0.5 / 1.0)
    assert by_name["p50 at 500"].met is False  # 9 ms
    pair = by_name["two workers"]
    assert pair.met is None and pair.ratio == pytest.approx(1890 / 1050)  # a figure only
    assert by_name["p99 at 700"].met is False
    assert by_name["p99 at 700"].ratio == pytest.approx(30 / 25)
    assert "passthrough at 700/s: p99 12.0 ms" in by_name["p99 at 700"].measured
    assert "passthrough" not in by_name["p99 at 200"].measured  # not measured at 200
    # Kept up with p99 <= 25 ms: worker 199 ev/s (the 700 step is over), naive 199 ev/s.
    assert by_name["vs naive at equal p99"].met is False
    assert by_name["vs naive at max"].met is True
    assert report.limit("aiokafka passthrough") is not None
    assert best_rate_within(report.e2e, "naive", 5.0) is None


def test_ranker_share_comes_from_the_floors_cpu_time_when_measured() -> None:
    report = _report()
    worker_max = report.e2e[3]  # 0.5 CPU ms per event, wall-clock inference share 0.75
    assert ranker_share(report, worker_max) == pytest.approx(0.75)
    # The floor ranks 2,500 track starts per CPU-second: 0.4 ms per start, 0.2 ms per event.
    report.limits.append(Limit(FLOOR_PER_START, 2500.0, "track starts/s", "floor"))
    assert ranker_share(report, worker_max) == pytest.approx(0.4)
    evaluate(report)
    check = next(t for t in report.targets if t.name == "non-ranker CPU share")
    assert check.met is False and check.ratio == pytest.approx(0.6 / NON_RANKER_SHARE)


def test_p99_at_200_is_also_held_to_the_passthrough_plus_five_ms() -> None:
    report = _report()
    report.e2e.append(_run("passthrough", 200.0, 200.0, 2.0, None))
    evaluate(report)
    check = next(t for t in report.targets if t.name == "p99 at 200")
    assert check.met is False  # 8 ms: under 10 ms, but over 2 + 5 ms
    assert check.ratio == pytest.approx(8.0 / 7.0)
    assert "passthrough + 5 ms" in check.target


def test_markdown_and_json_and_chart(tmp_path: Path) -> None:
    report = _report()
    evaluate(report)
    text = render_markdown(report)
    assert "Test CPU" in text
    assert "| worker | 200/s |" in text
    assert "## Targets" in text and "p99 <= 25 ms at 700 events/s" in text
    data = report.to_json()
    json.dumps(data, allow_nan=False)
    assert data["stages"][0]["ratio"] == pytest.approx(1.0)
    assert data["e2e"][2]["kept_up"] is True
    png = tmp_path / "chart.png"
    assert write_chart(report, png)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not write_chart(Report(machine={}, started_at="x", quick=True), tmp_path / "no.png")


def test_the_profile_says_at_which_rate_it_was_taken() -> None:
    report = _report()
    report.profile = [{"function": "run (pipeline.py)", "self_pct": 5.0, "total_pct": 9.0}]
    report.profile_components = {"ranker: onnxruntime call": 9.0}
    assert "## Worker profile at max rate: top functions" in render_markdown(report)
    report.profile_rate = 200.0
    text = render_markdown(report)
    assert "## Worker profile at 200 events/s: top functions" in text
    assert "## Worker CPU by component at 200 events/s" in text
    assert report.to_json()["profile_rate"] == 200.0
