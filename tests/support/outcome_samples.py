"""Synthetic outcome messages with known rates, for readout tests."""

from __future__ import annotations

import random
from collections.abc import Mapping

from models.experiments import Experiment
from nowplaying.outcomes import OutcomeMessage

T0 = 1_795_800_000_000


def sample_outcomes(
    experiment: Experiment,
    hit_rates: Mapping[str, float],
    *,
    listeners: int = 2000,
    per_listener: int = 5,
    seed: int = 1,
    listened_given_hit: float = 0.6,
) -> list[OutcomeMessage]:
    """``per_listener`` exposures for each of ``listeners`` users, each a hit with its variant's
    probability; a hit is listened through with ``listened_given_hit``, a miss with 0.4."""
    rng = random.Random(seed)
    out = []
    for u in range(listeners):
        user = f"u{u}"
        variant = experiment.assign(user)
        for k in range(per_listener):
            hit = rng.random() < hit_rates[variant]
            listened = rng.random() < (listened_given_hit if hit else 0.4)
            ts = T0 + (u * per_listener + k) * 1000
            out.append(
                OutcomeMessage(
                    exposure_id=f"{user}-e{k}",
                    user_id=user,
                    session_id=f"s{u}",
                    variant=variant,
                    model_version=f"m-{variant}",
                    list_length=10,
                    list_generated_at=ts,
                    exposure_latency_ms=rng.randrange(1, 40),
                    next_event_id=f"{user}-n{k}",
                    next_track_id="t-hit" if hit else "t-miss",
                    next_started_at=ts + 500,
                    hit=hit,
                    rank=rng.randrange(1, 11) if hit else None,
                    outcome="listened" if listened else "skip_early",
                    ended_at=ts + 900,
                )
            )
    return out
