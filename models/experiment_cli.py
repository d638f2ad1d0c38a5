"""``nowplaying experiment report``: read the outcome topic, write the A/B readout.

A bounded read (kafka-python, no consumer group): every partition of ``NP_TOPIC_OUTCOMES`` from
the start (``--since``: the first offset at or after that time; ``--last N``: the last N records
of each partition) up to its end offset taken when the command starts; then the same window of
the dead-letter topic for the guardrail. Outcomes are deduped by exposure id; ``--until`` drops
exposures shown at or after it. The configured split is ``--variants``/``--salt``, else the
registry's ``variants`` file, else ``NP_MODEL_VARIANTS``/``NP_EXPERIMENT_SALT``. Writes
``report.md``, ``metrics.json`` and ``readout.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.experiment_readout import (
    METRICS,
    Readout,
    readout,
    to_json,
)
from models.experiment_resampling import aa_false_positive_rate, salts_for, sessions_needed
from models.experiments import Experiment, experiment_from
from models.variants_file import read_variants_file
from nowplaying.clients import kafka_python_security_kwargs
from nowplaying.events import DeadLetter
from nowplaying.outcomes import OutcomeMessage
from nowplaying.settings import Settings

REPLAY_NOTE = (
    "Replayed logs do not react to the lists: the listener plays what the log says whatever "
    "was shown, so these figures measure how often the list held what the listener actually "
    "played next (an offline hit rate measured online), not an effect of the lists on listening."
)


def parse_time(text: str | None) -> int | None:
    """Epoch ms from epoch ms digits or an ISO 8601 time (UTC when no zone)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    dt = datetime.fromisoformat(text)
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)


def read_topic(
    settings: Settings, topic: str, *, since_ms: int | None = None, last: int | None = None
) -> Iterator[Any]:
    """Every record of ``topic`` in the window, up to the end offsets of now."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_servers,
        client_id="nowplaying-experiment-report",
        group_id=None,
        enable_auto_commit=False,
        **kafka_python_security_kwargs(settings),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        starts = dict(begins)
        if since_ms is not None:
            found = consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        if last is not None:
            starts = {tp: max(starts[tp], ends[tp] - last) for tp in tps}
        todo = {tp for tp in tps if starts[tp] < ends[tp]}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield r
                if consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
    finally:
        consumer.close()


def configured_experiment(settings: Settings, args: argparse.Namespace) -> Experiment | None:
    if args.variants:
        return experiment_from(args.variants, args.salt or settings.experiment_salt)
    found = read_variants_file(settings.model_dir)
    if found is not None and found.spec:
        return experiment_from(found.spec, found.salt)
    return experiment_from(settings.model_variants, settings.experiment_salt)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``nowplaying experiment report``."""
    experiment = configured_experiment(settings, args)
    since, until = parse_time(args.since), parse_time(args.until)
    outcomes = [
        OutcomeMessage.model_validate_json(r.value)
        for r in read_topic(settings, settings.topic_outcomes, since_ms=since, last=args.last)
    ]
    if until is not None:
        outcomes = [o for o in outcomes if o.list_generated_at < until]
    if experiment is None:  # no test configured: one arm, named by what the outcomes say
        names = sorted({o.variant or "all" for o in outcomes}) or ["all"]
        experiment = experiment_from(",".join(f"{n}=latest:1" for n in names), "readout")
        outcomes = [o.model_copy(update={"variant": o.variant or "all"}) for o in outcomes]
    assert experiment is not None
    letters = [
        DeadLetter.model_validate_json(r.value).key
        for r in read_topic(settings, settings.topic_dead_letters, since_ms=since, last=args.last)
    ]
    result = readout(experiment, outcomes, letters)
    data = to_json(result)
    data["window"] = {"since_ms": since, "until_ms": until, "last": args.last}
    data["salt"] = experiment.salt
    data["outcome_messages_read"] = len(outcomes)
    if len(experiment.variants) > 1 and not args.no_sequential:
        data["listeners_needed_p_below_0.01"] = sessions_needed(experiment, outcomes)
    if args.aa_salts:
        sim = aa_false_positive_rate(outcomes, salts_for("aa", args.aa_salts))
        tests = len(sim.p_values)
        data["aa_simulation"] = {
            "salts": tests,
            "significant_at_0.05": sim.false_positives(),
            "false_positive_rate": sim.false_positives() / tests,
            "exposure_level_significant_at_0.05": sim.exposure_level_false_positives(),
            "p_values": sim.p_values,
        }
    data["note"] = REPLAY_NOTE
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render(result, data), encoding="utf-8")
    write_chart(result, out / "readout.png")
    print(result.decision)
    print(f"wrote {out / 'report.md'}, {out / 'metrics.json'}, {out / 'readout.png'}")
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def render(r: Readout, data: dict[str, Any]) -> str:
    lines = [
        "# A/B readout",
        "",
        f"**Decision.** {r.decision}",
        "",
        f"_{REPLAY_NOTE}_",
        "",
        f"Outcome messages read: {data['outcome_messages_read']} (repeats dropped by exposure "
        f"id: {r.duplicates_dropped}); salt `{data['salt']}`; control `{r.control}`.",
        "Rates are over listeners (the randomisation unit): ratio of sums with a "
        "delta-method (cluster-robust) 95% interval; p-values are the listener-clustered "
        "z-test (the exposure-level two-proportion z-test is in metrics.json for reference).",
        "",
        "| variant | model | weight | listeners | exposures | hit rate | listened-hit rate "
        "| skip rate | skip rate, recommended / other | event-to-list p99 | dead letters / 1k |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in r.variants:
        cells = []
        for m in METRICS:
            rate = v.rates[m]
            cells.append(f"{rate.rate:.2%} [{rate.interval.low:.2%}, {rate.interval.high:.2%}]")
        p99 = "n/a" if v.latency_p99_ms is None else f"{v.latency_p99_ms:.0f} ms"
        dl = "n/a" if v.dead_letters_per_1000 is None else f"{v.dead_letters_per_1000:.2f}"
        lines.append(
            f"| {v.name} | {', '.join(v.model_versions) or '-'} | {v.weight} | {v.listeners} "
            f"| {v.exposures} | {' | '.join(cells)} | {_pct(v.skip_rate_recommended)} / "
            f"{_pct(v.skip_rate_other)} | {p99} | {dl} |"
        )
    lines += [
        "",
        "| treatment | metric | lift over control [95% CI] | p-value |",
        "|---|---|---|---|",
    ]
    for name, comps in r.comparisons.items():
        for comp in comps:
            lift = "n/a"
            if comp.lift is not None:
                low, high = comp.lift.interval.low, comp.lift.interval.high
                lift = f"{comp.lift.value:+.1%} [{low:+.1%}, {high:+.1%}]"
            lines.append(f"| {name} | {comp.metric} | {lift} | {comp.test.p_value:.3g} |")
    lines += [
        "",
        f"Sample-ratio check (chi-square of listeners against the weights): chi2 = "
        f"{r.srm.chi2:.3g}, p = {r.srm.p_value:.3g} "
        f"({'passes' if r.srm.p_value >= 0.001 else 'FAILS'} at 0.001).",
        f"Dead letters are attributed to a variant by their key (the user id) through the same "
        f"assignment; {r.unattributed_dead_letters} had no key.",
    ]
    if "listeners_needed_p_below_0.01" in data:
        lines.append(
            f"Listeners needed for the hit-rate test to reach p < 0.01 and stay there: "
            f"{data['listeners_needed_p_below_0.01']}."
        )
    if "aa_simulation" in data:
        a = data["aa_simulation"]
        lines.append(
            f"A/A simulation: the listeners re-split 50/50 with {a['salts']} salts over the same "
            f"outcomes; {a['significant_at_0.05']} significant at 0.05 "
            f"(false-positive rate {a['false_positive_rate']:.1%}; the exposure-level z-test, "
            f"which ignores that a listener's exposures are alike, would have flagged "
            f"{a['exposure_level_significant_at_0.05']})."
        )
    lines += [f"Note: {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


def write_chart(r: Readout, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.5))
    for ax, metric in zip(axes, METRICS, strict=True):
        names = [v.name for v in r.variants]
        values = [v.rates[metric].rate for v in r.variants]
        errs = [
            [v.rates[metric].rate - v.rates[metric].interval.low for v in r.variants],
            [v.rates[metric].interval.high - v.rates[metric].rate for v in r.variants],
        ]
        ax.bar(names, values, yerr=errs, capsize=6, color="#4c72b0")
        ax.set_title(metric.replace("_", " ") + " (95% CI)")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
