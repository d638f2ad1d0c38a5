"""The A/B readout on synthetic outcomes with known rates."""

from __future__ import annotations

import pytest

from models.experiment_readout import (
    readout,
    to_json,
)
from models.experiment_resampling import aa_false_positive_rate, salts_for, sessions_needed
from models.experiments import experiment_from
from tests.support.outcome_samples import sample_outcomes


def test_equal_arms_show_no_detectable_difference_and_pass_the_ratio_check() -> None:
    exp = experiment_from("control=a:50,treatment=a:50", "aa")
    assert exp is not None
    r = readout(exp, sample_outcomes(exp, {"control": 0.5, "treatment": 0.5}, seed=3))
    assert r.decision.startswith("No detectable difference"), r.decision
    assert r.srm.p_value > 0.001
    (primary, *_) = r.comparisons["treatment"]
    assert primary.metric == "hit_rate" and primary.test.p_value > 0.05
    figures = {v.name: v for v in r.variants}
    assert figures["control"].rates["hit_rate"].interval.low < 0.5
    assert figures["control"].rates["hit_rate"].interval.high > 0.5


def test_a_weaker_treatment_is_stopped_and_a_better_one_shipped() -> None:
    exp = experiment_from("control=a:50,treatment=b:50", "ab")
    assert exp is not None
    worse = readout(exp, sample_outcomes(exp, {"control": 0.55, "treatment": 0.45}))
    assert worse.decision.startswith("Stop: treatment has a lower hit rate"), worse.decision
    lift = worse.comparisons["treatment"][0].lift
    assert lift is not None and lift.interval.high < 0 < 0.2 + lift.value
    better = readout(exp, sample_outcomes(exp, {"control": 0.45, "treatment": 0.55}))
    assert better.decision.startswith("Ship treatment"), better.decision
    needed = sessions_needed(exp, sample_outcomes(exp, {"control": 0.45, "treatment": 0.55}))
    assert needed is not None and needed < 2000


def test_a_split_unlike_the_configured_one_stops_the_readout() -> None:
    configured = experiment_from("control=a:90,treatment=b:10", "x")
    served = experiment_from("control=a:50,treatment=b:50", "x")
    assert configured is not None and served is not None
    r = readout(configured, sample_outcomes(served, {"control": 0.5, "treatment": 0.5}))
    assert r.srm.p_value < 1e-6
    assert r.decision.startswith("Stop: the listeners are not split as configured")


def test_outcomes_are_counted_once_per_exposure_and_dead_letters_by_the_users_variant() -> None:
    exp = experiment_from("control=a:50,treatment=b:50", "d")
    assert exp is not None
    outcomes = sample_outcomes(exp, {"control": 0.5, "treatment": 0.5}, listeners=200)
    users = [o.user_id for o in outcomes[:30]]
    r = readout(exp, [*outcomes, *outcomes[:40]], [*users, None])
    assert r.duplicates_dropped == 40
    assert sum(v.exposures for v in r.variants) == len(outcomes)
    by_name = {v.name: v.dead_letters for v in r.variants}
    assert sum(by_name.values()) == 30 and r.unattributed_dead_letters == 1
    assert by_name["control"] == sum(exp.assign(u) == "control" for u in users)
    data = to_json(r)
    assert set(data["variants"]) == {"control", "treatment"}
    assert data["variants"]["control"]["event_to_list_p99_ms"] is not None


def test_the_offline_aa_false_positive_rate_is_near_alpha() -> None:
    exp = experiment_from("control=a:1", "x")
    assert exp is not None
    outcomes = sample_outcomes(exp, {"control": 0.5}, listeners=1000, per_listener=3)
    sim = aa_false_positive_rate(outcomes, salts_for("t", 400))
    assert len(sim.p_values) == len(sim.exposure_level_p_values) == 400
    assert sim.false_positives() / 400 == pytest.approx(0.05, abs=0.035)
