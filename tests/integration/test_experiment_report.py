"""``nowplaying experiment report`` reading the real outcome and dead-letter topics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.experiment_cli import run
from models.experiments import experiment_from
from nowplaying.clients import kafka_producer
from nowplaying.events import Rejection, dead_letter_for
from tests.conftest import SettingsFactory
from tests.support.outcome_samples import sample_outcomes


def args(out: Path, **extra: object) -> argparse.Namespace:
    options: dict[str, object] = {
        "since": None,
        "until": None,
        "last": None,
        "out": out,
        "variants": None,
        "salt": None,
        "aa_salts": 0,
        "no_sequential": False,
    }
    return argparse.Namespace(**(options | extra))


def test_report_reads_the_topics_to_their_end_dedupes_and_writes_its_files(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    spec = "control=a:50,treatment=b:50"
    settings = settings_factory(model_variants=spec, experiment_salt="report-1")
    experiment = experiment_from(spec, settings.experiment_salt)
    assert experiment is not None
    rates = {"control": 0.55, "treatment": 0.40}
    outcomes = sample_outcomes(experiment, rates, listeners=400, per_listener=4)
    producer = kafka_producer(settings)
    try:
        for o in [*outcomes, *outcomes[:25]]:  # 25 redelivered
            producer.send(
                settings.topic_outcomes, o.model_dump_json().encode(), o.exposure_id.encode()
            )
        for user in ("u1", "u2", "u3"):
            letter = dead_letter_for(
                b"{",
                Rejection("invalid_json", "x"),
                topic="p",
                partition=0,
                offset=0,
                key=user.encode(),
                failed_at=1,
            )
            producer.send(
                settings.topic_dead_letters, letter.model_dump_json().encode(), user.encode()
            )
        producer.flush()
    finally:
        producer.close()
    assert run(settings, args(tmp_path / "all")) == 0
    data = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert data["outcome_messages_read"] == len(outcomes) + 25
    assert data["duplicates_dropped"] == 25
    variants = data["variants"]
    assert sum(v["exposures"] for v in variants.values()) == len(outcomes)
    assert sum(v["dead_letters"] for v in variants.values()) == 3
    assert data["comparisons"]["treatment"]["hit_rate"]["p_value"] < 0.01
    assert data["decision"].startswith("Stop: treatment has a lower hit rate")
    assert data["listeners_needed_p_below_0.01"] is not None
    report = (tmp_path / "all" / "report.md").read_text()
    assert "Replayed logs do not react to the lists" in report and "| control |" in report
    assert (tmp_path / "all" / "readout.png").stat().st_size > 1000
    # a window: the last 100 records of each partition only
    assert run(settings, args(tmp_path / "last", last=100, no_sequential=True)) == 0
    last = json.loads((tmp_path / "last" / "metrics.json").read_text())
    assert last["outcome_messages_read"] <= 100 * settings.topic_partitions
    # --until drops exposures shown from then on
    until = outcomes[len(outcomes) // 2].list_generated_at
    assert run(settings, args(tmp_path / "until", until=str(until), no_sequential=True)) == 0
    early = json.loads((tmp_path / "until" / "metrics.json").read_text())
    assert sum(v["exposures"] for v in early["variants"].values()) == len(outcomes) // 2
