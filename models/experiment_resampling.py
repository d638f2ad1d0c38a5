"""Readout analyses that look at the outcomes more than once: how many listeners a test
needed (repeated looks as listeners arrive), and offline A/A re-splits of logged outcomes."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from models.experiment_readout import (
    ALPHA,
    PRIMARY,
    ListenerCounts,
    control_of,
    dedupe,
    per_listener,
    rates_of,
)
from models.experiment_stats import clustered_z_test, two_proportion_z_test
from models.experiments import Experiment, user_bucket
from nowplaying.outcomes import OutcomeMessage


def sessions_needed(
    experiment: Experiment,
    outcomes: Sequence[OutcomeMessage],
    alpha: float = 0.01,
    step: int = 50,
) -> int | None:
    """Listeners (in the order their first exposure was shown) the hit-rate test needed to reach
    ``p < alpha`` and stay there at every later look (every ``step`` listeners); None if never."""
    unique, _ = dedupe(outcomes)
    first: dict[str, int] = {}
    for o in sorted(unique, key=lambda o: (o.list_generated_at, o.exposure_id)):
        first.setdefault(o.user_id, len(first))
    control = control_of(experiment)
    treatments = [v.name for v in experiment.variants if v.name != control]
    if not treatments:
        return None
    order = sorted(first, key=first.__getitem__)
    by_user: dict[str, list[OutcomeMessage]] = defaultdict(list)
    for o in unique:
        by_user[o.user_id].append(o)
    reached: int | None = None
    for n in [*range(step, len(order), step), len(order)]:
        chosen = [o for u in order[:n] for o in by_user[u]]
        counts = per_listener(chosen)
        c = rates_of(counts.get(control, {}))[PRIMARY]
        t = rates_of(counts.get(treatments[0], {}))[PRIMARY]
        if clustered_z_test(c, t).p_value < alpha:
            reached = n if reached is None else reached
        else:
            reached = None
    return reached


@dataclass(frozen=True, slots=True)
class AASimulation:
    """Offline A/A tests: the listener-clustered p-values and, for contrast, the exposure-level
    ones (which treat a listener's exposures as independent)."""

    p_values: list[float]
    exposure_level_p_values: list[float]

    def false_positives(self, alpha: float = ALPHA) -> int:
        return sum(p < alpha for p in self.p_values)

    def exposure_level_false_positives(self, alpha: float = ALPHA) -> int:
        return sum(p < alpha for p in self.exposure_level_p_values)


def aa_false_positive_rate(
    outcomes: Sequence[OutcomeMessage], salts: Sequence[str]
) -> AASimulation:
    """Re-randomise the listeners of ``outcomes`` into two equal arms with each salt and test
    the hit rate. Offline A/A over the same logged outcomes."""
    unique, _ = dedupe(outcomes)
    per_user = per_listener(o.model_copy(update={"variant": None}) for o in unique)[""]
    clustered, exposure_level = [], []
    for salt in salts:
        arms: list[dict[str, ListenerCounts]] = [{}, {}]
        for user, counts in per_user.items():
            arms[_arm(user, salt)][user] = counts
        a, b = rates_of(arms[0])[PRIMARY], rates_of(arms[1])[PRIMARY]
        clustered.append(clustered_z_test(a, b).p_value)
        ka, na = (sum(c.hits for c in arms[0].values()), sum(c.exposures for c in arms[0].values()))
        kb, nb = (sum(c.hits for c in arms[1].values()), sum(c.exposures for c in arms[1].values()))
        exposure_level.append(two_proportion_z_test(ka, na, kb, nb).p_value)
    return AASimulation(clustered, exposure_level)


def _arm(user: str, salt: str) -> int:
    return user_bucket(user, salt) % 2


def salts_for(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{hashlib.sha1(str(i).encode()).hexdigest()[:8]}" for i in range(n)]
