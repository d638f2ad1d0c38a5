"""A/B tests: the variants spec, stable assignment and its split, loading variants, and the
pipeline ranking each listener with the model of the listener's variant."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from models.experiments import (
    Experiment,
    ExperimentError,
    Variant,
    experiment_from,
    load_variant_recommenders,
    parse_variants,
)
from nowplaying import metrics
from nowplaying.events import PlayEvent, RecommendationMessage
from streams.instrumentation import NullSensor, PrometheusSensor
from streams.pipeline import Pipeline
from tests.support.batches import NOW_S, end, pipeline_settings, raw, start
from tests.support.fakes import FakePublisher, FakeRanker, MemoryStore
from tests.support.tiny_models import shared_two_versions

USERS = [f"user-{i}" for i in range(10_000)]


# --- the spec -------------------------------------------------------------------------------


def test_spec_parses_names_versions_and_weights() -> None:
    spec = " control=20261128T214525Z-b87b58:90 , treatment=latest:10"
    assert parse_variants(spec) == (
        Variant("control", "20261128T214525Z-b87b58", 90),
        Variant("treatment", "latest", 10),
    )


def test_empty_spec_means_no_experiment() -> None:
    assert parse_variants("") == ()
    assert experiment_from("  ", "salt") is None


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("control=v1", "name=version:weight"),
        ("control:v1:50", "name=version:weight"),
        ("control=v1:0", "weight 0"),
        ("control=v1:-5", "weight -5"),
        ("control=v1:ten", "not an integer"),
        ("control=v1:2.5", "not an integer"),
        ("Control=v1:50", "name 'Control'"),
        ("a b=v1:50", "name 'a b'"),
        ("=v1:50", "name ''"),
        ("control=../etc:50", "not a model version"),
        ("control=:50", "not a model version"),
        ("a=v1:50,a=v2:50", "a repeated"),
        ("a=v1:50,,b=v2:50", "name=version:weight"),
    ],
)
def test_malformed_specs_are_refused_with_the_reason(spec: str, complaint: str) -> None:
    with pytest.raises(ExperimentError, match=complaint):
        parse_variants(spec)


# --- assignment -----------------------------------------------------------------------------


def test_assignment_is_stable_for_a_salt_and_changes_with_it() -> None:
    spec = "a=v1:50,b=v2:50"
    one = experiment_from(spec, "exp-1")
    again = experiment_from(spec, "exp-1")
    other = experiment_from(spec, "exp-2")
    assert one is not None and again is not None and other is not None
    first = [one.assign(u) for u in USERS]
    assert first == [again.assign(u) for u in USERS]
    moved = sum(x != y for x, y in zip(first, (other.assign(u) for u in USERS), strict=True))
    assert 0.45 < moved / len(USERS) < 0.55  # a new salt reshuffles: half move at 50/50


def test_assignment_is_the_same_in_another_process() -> None:
    """Workers run in separate processes (with their own hash seeds): they must agree."""
    code = (
        "from models.experiments import experiment_from\n"
        "e = experiment_from('a=v1:30,b=v2:30,c=v3:40', 'cross')\n"
        "print(''.join(e.assign(f'user-{i}') for i in range(300)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
        cwd=Path(__file__).resolve().parents[2],
    )
    here = experiment_from("a=v1:30,b=v2:30,c=v3:40", "cross")
    assert here is not None
    assert done.stdout.strip() == "".join(here.assign(f"user-{i}") for i in range(300))


@pytest.mark.parametrize("weights", [(90, 10), (50, 50), (70, 20, 10), (1, 1, 1, 1)])
def test_split_follows_the_weights(weights: tuple[int, ...]) -> None:
    variants = tuple(Variant(f"v{i}", "latest", w) for i, w in enumerate(weights))
    experiment = Experiment(variants, "split")
    counts = Counter(experiment.assign(u) for u in USERS)
    for variant in variants:
        share = counts[variant.name] / len(USERS)
        assert share == pytest.approx(variant.weight / sum(weights), abs=0.02), counts


# --- loading the variants' models -----------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> tuple[Path, str, str]:
    """Two tiny versions; ``latest`` names the older."""
    return shared_two_versions()


def test_every_variant_gets_its_model_and_latest_is_the_pointer(
    registry: tuple[Path, str, str],
) -> None:
    folder, older, newer = registry
    experiment = experiment_from(f"control=latest:90,treatment={newer}:5,aa={older}:5", "s")
    assert experiment is not None
    loaded = load_variant_recommenders(experiment, folder)
    assert {n: r.model_version for n, r in loaded.items()} == {
        "control": older,
        "treatment": newer,
        "aa": older,
    }
    assert loaded["control"] is loaded["aa"]  # one version, loaded once


def test_a_missing_version_stops_the_experiment_naming_the_variant(
    registry: tuple[Path, str, str],
) -> None:
    folder, older, _ = registry
    experiment = experiment_from(f"control={older}:50,treatment=20990101T000000Z-000000:50", "s")
    assert experiment is not None
    with pytest.raises(ExperimentError, match=r"variant 'treatment'.*has no model\.onnx"):
        load_variant_recommenders(experiment, folder)


def test_a_version_that_does_not_load_stops_the_experiment(
    registry: tuple[Path, str, str], tmp_path: Path
) -> None:
    folder, older, _ = registry
    broken = tmp_path / older
    broken.mkdir()
    (broken / "metadata.json").write_bytes((folder / older / "metadata.json").read_bytes())
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    experiment = experiment_from(f"control={older}:1", "s")
    assert experiment is not None
    with pytest.raises(ExperimentError, match=r"variant 'control'.*does not load"):
        load_variant_recommenders(experiment, tmp_path)


# --- the pipeline ---------------------------------------------------------------------------


def ranker(version: str) -> FakeRanker:
    return FakeRanker(model_version=version)


def test_each_listener_is_ranked_by_the_model_of_its_variant() -> None:
    experiment = experiment_from("control=m-control:50,treatment=m-treatment:50", "pipe")
    assert experiment is not None
    rankers = {"control": ranker("m-control"), "treatment": ranker("m-treatment")}
    publisher = FakePublisher()
    store = MemoryStore()
    pipeline = Pipeline(
        pipeline_settings(),
        store,
        rankers["control"],
        publisher,
        sensor=PrometheusSensor(),
        variants=rankers,
        assigner=experiment,
        clock=lambda: NOW_S,
    )
    users = [f"listener-{i}" for i in range(40)]
    batch: list[PlayEvent] = [start(0, "t1", session=f"s-{u}", user=u) for u in users]
    batch += [end(0, "t1", True, session=f"s-{u}", user=u) for u in users]
    outcomes_before = {
        name: metrics.VARIANT_OUTCOMES.labels(name, "skip_early")._value.get() for name in rankers
    }
    asyncio.run(pipeline.process_batch(raw(batch)))
    lists = [
        RecommendationMessage.model_validate_json(v)
        for v in publisher.on(pipeline_settings().topic_recommendations)
    ]
    assert sorted(m.user_id for m in lists) == sorted(users)
    for message in lists:
        variant = experiment.assign(message.user_id)
        assert message.variant == variant
        assert message.model_version == f"m-{variant}"
    # one ranker call per variant for the whole batch, each with its own listeners only
    by_variant = Counter(experiment.assign(u) for u in users)
    assert set(by_variant) == {"control", "treatment"}
    for name, r in rankers.items():
        assert len(r.calls) == 1 and len(r.calls[0]) == by_variant[name]
    # the listeners' outcomes are counted under their variant
    for name in rankers:
        after = metrics.VARIANT_OUTCOMES.labels(name, "skip_early")._value.get()
        assert after - outcomes_before[name] == by_variant[name]
    # a redelivered start republishes the stored list: same variant, no new ranking
    asyncio.run(pipeline.process_batch(raw(batch[:1])))
    again = RecommendationMessage.model_validate_json(
        publisher.on(pipeline_settings().topic_recommendations)[-1]
    )
    assert again == next(m for m in lists if m.trigger_event_id == again.trigger_event_id)
    assert sum(len(r.calls) for r in rankers.values()) == 2


def test_without_an_experiment_lists_carry_no_variant() -> None:
    publisher = FakePublisher()
    pipeline = Pipeline(
        pipeline_settings(),
        MemoryStore(),
        ranker("single"),
        publisher,
        sensor=NullSensor(),
        clock=lambda: NOW_S,
    )
    asyncio.run(pipeline.process_batch(raw([start(0, "t1")])))
    (body,) = publisher.on(pipeline_settings().topic_recommendations)
    message = RecommendationMessage.model_validate_json(body)
    assert message.variant is None and message.model_version == "single"


def test_variants_without_an_assigner_are_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        Pipeline(
            pipeline_settings(),
            MemoryStore(),
            ranker("x"),
            FakePublisher(),
            sensor=NullSensor(),
            variants={"a": ranker("x")},
        )
