"""Automatic steering: when a session is going wrong, its list moves away from what was skipped
and towards tracks the skip-risk model expects to be listened to.

:class:`AutoSteering` is the :class:`models.steered.SkipRiskScorer` the
:class:`models.steered.SteeredRecommender` asks, per batch, for each state's per-candidate
skip risk (or None: that state is not steered automatically). It triggers
(:func:`going_wrong`) when

* the session's last ``min_skips`` ended tracks (default 2) were all skipped
  (``SessionState.consecutive_skips``: early or late skips since the last listened-through
  track; the state does not tell early from late for a run), or
* the ranker's own top ``k`` has a mean predicted skip risk of at least ``risk_threshold``
  (a high risk for the current direction).

A triggered state's list is then ordered by :func:`features.steering.steer` with the risk term
and the away-from-the-skipped-tracks'-centroid term; its label says ``auto``. Risks come from
ONE onnxruntime call per batch over the rows the ranker scored (the top-``k`` rows of the other
states ride along, for the second trigger), plus one more call only when the second trigger
fires for some state. ``NP_AUTO_STEERING`` switches it on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np

from features.artifacts import F32
from features.session import SessionState
from models.recommender import Scored
from models.skip.scorer import SkipRiskModel

#: Early/late skips in a row that trigger the automatic steering.
DEFAULT_MIN_SKIPS: Final = 2
#: Mean skip risk of the ranker's top k that triggers it (a high risk for the current direction).
DEFAULT_RISK_THRESHOLD: Final = 0.7


@dataclass(frozen=True, slots=True)
class AutoPolicy:
    min_skips: int = DEFAULT_MIN_SKIPS
    risk_threshold: float = DEFAULT_RISK_THRESHOLD  # above 1: the risk trigger is off
    k: int = 10


def going_wrong(state: SessionState, top_risk: float | None, policy: AutoPolicy) -> bool:
    """Whether a state triggers the automatic steering (see the module docstring)."""
    if state.consecutive_skips >= policy.min_skips:
        return True
    return top_risk is not None and top_risk >= policy.risk_threshold


class RiskModel(Protocol):
    """What the policy needs of a skip-risk model (:class:`SkipRiskModel`)."""

    def risk(self, rows: F32) -> F32: ...


class AutoSteering:
    """Per state, the candidates' skip risks when the session is going wrong, else None."""

    needs_rows: Final = True

    def __init__(self, model: RiskModel, policy: AutoPolicy | None = None) -> None:
        self.model = model
        self.policy = policy or AutoPolicy()

    def skip_risks(self, scored: Sequence[Scored]) -> list[F32 | None]:
        policy = self.policy
        by_skips = [s.context.state.consecutive_skips >= policy.min_skips for s in scored]
        check_top = policy.risk_threshold <= 1.0
        parts: list[F32] = []
        tops: list[np.ndarray] = []
        for s, full in zip(scored, by_skips, strict=True):
            rows = _rows(s)
            if full:
                parts.append(rows)
                tops.append(np.empty(0, np.int64))
            elif check_top:
                top = np.lexsort((s.candidates.tracks, -s.scores))[: policy.k]
                parts.append(rows[top])
                tops.append(top)
            else:
                tops.append(np.empty(0, np.int64))
        risks = self.model.risk(np.concatenate(parts)) if parts else np.empty(0, np.float32)
        out: list[F32 | None] = []
        late: list[int] = []  # states the risk trigger fired for: all their rows still to rate
        at = 0
        for i, (s, full) in enumerate(zip(scored, by_skips, strict=True)):
            if full:
                out.append(risks[at : at + len(s.scores)])
                at += len(s.scores)
                continue
            top_risk = None
            if check_top and len(tops[i]):
                top_risk = float(risks[at : at + len(tops[i])].mean())
                at += len(tops[i])
            out.append(None)
            if going_wrong(s.context.state, top_risk, policy):
                late.append(i)
        if late:
            more = self.model.risk(np.concatenate([_rows(scored[i]) for i in late]))
            ends = np.cumsum([len(scored[i].scores) for i in late])[:-1]
            for i, part in zip(late, np.split(more, ends), strict=True):
                out[i] = part
        return out


def _rows(scored: Scored) -> F32:
    if scored.rows is None:
        raise ValueError("the batch must be scored with keep_rows=True")
    return scored.rows


def auto_steering_for(
    version_dir: Path, enabled: bool, *, intra_op_threads: int = 1
) -> AutoSteering | None:
    """The automatic steering of a model version when ``enabled`` (``NP_AUTO_STEERING``) and
    the version has a skip model; None otherwise (lists are then steered by intents only)."""
    if not enabled:
        return None
    model = SkipRiskModel.load(version_dir, intra_op_threads=intra_op_threads)
    return AutoSteering(model) if model is not None else None
