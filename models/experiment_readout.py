"""The A/B readout: outcome messages (deduped by exposure id) in, per-variant figures out.

Per variant: listeners, exposures, and three rates over listeners (the randomisation unit, see
:mod:`models.experiment_stats`), each with a 95% interval: the **hit rate** (the next track was in
the list: hits@10), the **listened-hit rate** (a hit listened through) and the **skip rate**
(early or late skips among attributed plays that ended); the skip rates of recommended (hit) and
other plays; the guardrails (event-to-list p99, dead letters per 1,000 exposures). Against the
control: relative lift with its interval and the listener-clustered p-value. A sample-ratio
check of the listeners against the configured weights, and one sentence of decision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from models.experiment_stats import (
    ClusteredRate,
    Lift,
    SrmTest,
    ZTest,
    clustered_rate,
    clustered_z_test,
    quantile,
    relative_lift,
    srm_test,
    two_proportion_z_test,
)
from models.experiments import Experiment, Variant
from nowplaying.outcomes import OutcomeMessage

ALPHA: Final = 0.05
#: Below this SRM p-value the split is not what was configured: the readout is not trusted.
SRM_ALPHA: Final = 0.001
METRICS: Final = ("hit_rate", "listened_hit_rate", "skip_rate")
PRIMARY: Final = "hit_rate"


@dataclass(slots=True)
class ListenerCounts:
    exposures: int = 0
    hits: int = 0
    listened_hits: int = 0
    ended: int = 0
    skips: int = 0


@dataclass(frozen=True, slots=True)
class VariantFigures:
    name: str
    weight: int
    model_versions: tuple[str, ...]
    listeners: int
    exposures: int
    hits: int
    listened_hits: int
    rates: Mapping[str, ClusteredRate]
    skip_rate_recommended: float | None
    skip_rate_other: float | None
    latency_p99_ms: float | None
    dead_letters: int

    @property
    def dead_letters_per_1000(self) -> float | None:
        return None if not self.exposures else 1000 * self.dead_letters / self.exposures


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: str
    lift: Lift | None
    test: ZTest  # listener-clustered
    exposure_level: ZTest  # pooled, exposures as if independent (for reference)


@dataclass(frozen=True, slots=True)
class Readout:
    variants: tuple[VariantFigures, ...]
    control: str
    comparisons: Mapping[str, tuple[Comparison, ...]]  # treatment name -> per metric
    srm: SrmTest
    decision: str
    duplicates_dropped: int
    unattributed_dead_letters: int
    notes: tuple[str, ...] = field(default=())


def dedupe(outcomes: Iterable[OutcomeMessage]) -> tuple[list[OutcomeMessage], int]:
    """One outcome per exposure id (the first seen); and how many repeats were dropped."""
    seen: dict[str, OutcomeMessage] = {}
    dropped = 0
    for o in outcomes:
        if o.exposure_id in seen:
            dropped += 1
        else:
            seen[o.exposure_id] = o
    return list(seen.values()), dropped


def per_listener(outcomes: Iterable[OutcomeMessage]) -> dict[str, dict[str, ListenerCounts]]:
    """variant -> user -> counts (outside a test the variant is ``""``)."""
    out: dict[str, dict[str, ListenerCounts]] = defaultdict(dict)
    for o in outcomes:
        c = out[o.variant or ""].setdefault(o.user_id, ListenerCounts())
        c.exposures += 1
        c.hits += o.hit
        c.listened_hits += o.hit and o.outcome == "listened"
        if o.outcome != "no_end":
            c.ended += 1
            c.skips += o.outcome in ("skip_early", "skip_late")
    return out


def rates_of(listeners: Mapping[str, ListenerCounts]) -> dict[str, ClusteredRate]:
    cs = list(listeners.values())
    return {
        "hit_rate": clustered_rate([c.hits for c in cs], [c.exposures for c in cs]),
        "listened_hit_rate": clustered_rate(
            [c.listened_hits for c in cs], [c.exposures for c in cs]
        ),
        "skip_rate": clustered_rate([c.skips for c in cs], [c.ended for c in cs]),
    }


def _share(num: int, den: int) -> float | None:
    return num / den if den else None


def figures(
    variant: Variant,
    outcomes: Sequence[OutcomeMessage],
    listeners: Mapping[str, ListenerCounts],
    dead_letters: int,
) -> VariantFigures:
    ended = [o for o in outcomes if o.outcome != "no_end"]
    rec = [o for o in ended if o.hit]
    other = [o for o in ended if not o.hit]
    latencies = [
        float(o.exposure_latency_ms) for o in outcomes if o.exposure_latency_ms is not None
    ]
    return VariantFigures(
        name=variant.name,
        weight=variant.weight,
        model_versions=tuple(sorted({o.model_version for o in outcomes})),
        listeners=len(listeners),
        exposures=len(outcomes),
        hits=sum(o.hit for o in outcomes),
        listened_hits=sum(o.hit and o.outcome == "listened" for o in outcomes),
        rates=rates_of(listeners),
        skip_rate_recommended=_share(sum(o.outcome != "listened" for o in rec), len(rec)),
        skip_rate_other=_share(sum(o.outcome != "listened" for o in other), len(other)),
        latency_p99_ms=quantile(latencies, 0.99),
        dead_letters=dead_letters,
    )


def compare(control: VariantFigures, treatment: VariantFigures) -> tuple[Comparison, ...]:
    out = []
    for metric in METRICS:
        c, t = control.rates[metric], treatment.rates[metric]
        k1, n1 = round(c.rate * c.units), c.units
        k2, n2 = round(t.rate * t.units), t.units
        out.append(
            Comparison(
                metric,
                relative_lift(c, t),
                clustered_z_test(c, t),
                two_proportion_z_test(k1, n1, k2, n2),
            )
        )
    return tuple(out)


def control_of(experiment: Experiment) -> str:
    names = [v.name for v in experiment.variants]
    return "control" if "control" in names else names[0]


def readout(
    experiment: Experiment,
    outcomes: Iterable[OutcomeMessage],
    dead_letter_keys: Iterable[str | None] = (),
) -> Readout:
    """The readout of ``outcomes`` for the configured ``experiment``; ``dead_letter_keys``: the
    original key (the user id) of each dead letter of the same window."""
    unique, dropped = dedupe(outcomes)
    names = {v.name for v in experiment.variants}
    by_variant: dict[str, list[OutcomeMessage]] = defaultdict(list)
    for o in unique:
        by_variant[o.variant or ""].append(o)
    letters: dict[str, int] = defaultdict(int)
    unattributed = 0
    for key in dead_letter_keys:
        if key is None:
            unattributed += 1
        else:
            letters[experiment.assign(key)] += 1
    listeners = per_listener(unique)
    variants = tuple(
        figures(v, by_variant.get(v.name, []), listeners.get(v.name, {}), letters[v.name])
        for v in experiment.variants
    )
    notes = []
    other = sorted(set(by_variant) - names)
    if other:
        notes.append(f"outcomes of variants not configured were left out: {other}")
    control = control_of(experiment)
    base = next(v for v in variants if v.name == control)
    comparisons = {v.name: compare(base, v) for v in variants if v.name != control}
    srm = srm_test([v.listeners for v in variants], [v.weight for v in variants])
    return Readout(
        variants,
        control,
        comparisons,
        srm,
        decide(variants, control, comparisons, srm),
        dropped,
        unattributed,
        tuple(notes),
    )


def decide(
    variants: Sequence[VariantFigures],
    control: str,
    comparisons: Mapping[str, Sequence[Comparison]],
    srm: SrmTest,
) -> str:
    """One sentence: ship, no detectable difference, or stop."""
    if srm.p_value < SRM_ALPHA:
        return (
            f"Stop: the listeners are not split as configured (sample-ratio mismatch, "
            f"p = {srm.p_value:.2g}); fix the assignment before reading the metrics."
        )
    base = next(v for v in variants if v.name == control)
    worse: list[tuple[str, Comparison]] = []
    better: list[tuple[str, Comparison]] = []
    for name, comps in comparisons.items():
        primary = next(c for c in comps if c.metric == PRIMARY)
        if primary.test.p_value < ALPHA:
            (better if primary.test.z > 0 else worse).append((name, primary))
    if worse:
        name, c = worse[0]
        return (
            f"Stop: {name} has a lower hit rate than {control} "
            f"({_lift_text(c.lift)}, p = {c.test.p_value:.2g})."
        )
    if better:
        name, c = better[0]
        treat = next(v for v in variants if v.name == name)
        guard = _guardrail_problem(base, treat)
        if guard:
            return f"Do not ship yet: {name} raises the hit rate but {guard}."
        return (
            f"Ship {name}: its hit rate is higher than {control}'s "
            f"({_lift_text(c.lift)}, p = {c.test.p_value:.2g}) and the guardrails hold."
        )
    return f"No detectable difference between the variants at alpha {ALPHA} (hit rate)."


def _guardrail_problem(control: VariantFigures, treatment: VariantFigures) -> str | None:
    c, t = control.latency_p99_ms, treatment.latency_p99_ms
    if c is not None and t is not None and t > 1.5 * c + 10:
        return f"its event-to-list p99 is {t:.0f} ms against {c:.0f} ms"
    cd, td = control.dead_letters_per_1000, treatment.dead_letters_per_1000
    if cd is not None and td is not None and td > 2 * cd + 1:
        return f"it has {td:.1f} dead letters per 1,000 exposures against {cd:.1f}"
    return None


def _lift_text(lift: Lift | None) -> str:
    if lift is None:
        return "lift undefined"
    lo, hi = lift.interval.low, lift.interval.high
    return f"lift {lift.value:+.1%} [{lo:+.1%}, {hi:+.1%}]"


def to_json(r: Readout) -> dict[str, Any]:
    def rate(c: ClusteredRate) -> dict[str, Any]:
        i = c.interval
        return {"value": c.rate, "ci95": [i.low, i.high], "listeners": c.clusters, "n": c.units}

    return {
        "control": r.control,
        "decision": r.decision,
        "srm": {"chi2": r.srm.chi2, "p_value": r.srm.p_value, "expected": list(r.srm.expected)},
        "duplicates_dropped": r.duplicates_dropped,
        "unattributed_dead_letters": r.unattributed_dead_letters,
        "notes": list(r.notes),
        "variants": {
            v.name: {
                "weight": v.weight,
                "model_versions": list(v.model_versions),
                "listeners": v.listeners,
                "exposures": v.exposures,
                "hits": v.hits,
                "listened_hits": v.listened_hits,
                **{m: rate(v.rates[m]) for m in METRICS},
                "skip_rate_recommended": v.skip_rate_recommended,
                "skip_rate_other": v.skip_rate_other,
                "event_to_list_p99_ms": v.latency_p99_ms,
                "dead_letters": v.dead_letters,
                "dead_letters_per_1000_exposures": v.dead_letters_per_1000,
            }
            for v in r.variants
        },
        "comparisons": {
            name: {
                c.metric: {
                    "lift": None if c.lift is None else c.lift.value,
                    "lift_ci95": None
                    if c.lift is None
                    else [c.lift.interval.low, c.lift.interval.high],
                    "z": c.test.z,
                    "p_value": c.test.p_value,
                    "exposure_level_p_value": c.exposure_level.p_value,
                }
                for c in comps
            }
            for name, comps in r.comparisons.items()
        },
    }
