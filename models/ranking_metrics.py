"""Top-K list metrics for next-track prediction, and their confidence intervals by bootstrap.

Each query has ONE target (the session's actual next track), so a list is summed up by the
1-based ``rank`` of the target in it (0: not in the top K). Per query:

* HR@K: 1 when the target is in the list;
* MRR@K: ``1 / rank`` (0 outside the list);
* graded NDCG@K: DCG with the gain ``2**g - 1`` of the target's outcome (listened g=2, skipped
  late g=1, skipped early g=0; :data:`models.ranking_queries.GAIN`), ``(2**g - 1) / log2(1 +
  rank)``, divided by the ideal DCG of a query whose next track is listened through (``2**2 - 1``
  at rank 1). It is defined at every position: a hit on an early-skipped track counts 0, on a
  late-skipped one a third, on a listened one as much as HR weighted by ``1 / log2(1 + rank)``.

A figure over a set of queries is the mean over those queries (queries pooled across sessions).
Its 95% interval comes from a bootstrap over SESSIONS (queries of one session are not
independent): sessions are resampled with replacement, the figure is recomputed as
``sum(per-session sums) / sum(per-session counts)`` over the resample, and the 2.5% and 97.5%
percentiles of the resampled figures are the interval. All resamples are drawn at once (a
``[resamples, sessions]`` matrix of multiplicities), seeded, so a run is reproducible and every
method is resampled with the SAME sessions (the differences between methods are paired).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

CUTOFF: Final = 10
METRICS: Final = ("hr", "mrr", "ndcg")
MAX_GAIN: Final = 2
DEFAULT_RESAMPLES: Final = 1000
DEFAULT_SEED: Final = 20181
LEVEL: Final = 0.95

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def hit_rate(ranks: I64, cutoff: int = CUTOFF) -> F64:
    """Per query: 1.0 when the target is ranked within ``cutoff`` (rank 0: not in the list)."""
    return ((ranks >= 1) & (ranks <= cutoff)).astype(np.float64)


def reciprocal_rank(ranks: I64, cutoff: int = CUTOFF) -> F64:
    """Per query: ``1 / rank`` within ``cutoff``, else 0."""
    inside = (ranks >= 1) & (ranks <= cutoff)
    return np.where(inside, 1.0 / np.maximum(ranks, 1), 0.0)


def graded_ndcg(ranks: I64, gains: I64, cutoff: int = CUTOFF) -> F64:
    """Per query: ``(2**g - 1) / log2(1 + rank) / (2**MAX_GAIN - 1)`` within ``cutoff``, else 0."""
    inside = (ranks >= 1) & (ranks <= cutoff)
    dcg = (2.0 ** gains.astype(np.float64) - 1.0) / np.log2(1.0 + np.maximum(ranks, 1))
    return np.where(inside, dcg / (2.0**MAX_GAIN - 1.0), 0.0)


def per_query(ranks: I64, gains: I64, cutoff: int = CUTOFF) -> dict[str, F64]:
    """Every metric of :data:`METRICS` per query."""
    return {
        "hr": hit_rate(ranks, cutoff),
        "mrr": reciprocal_rank(ranks, cutoff),
        "ndcg": graded_ndcg(ranks, gains, cutoff),
    }


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure and its bootstrap interval."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high


class SessionBootstrap:
    """Resamples of the sessions of one evaluation, drawn once and applied to any figure.

    ``sessions[i]`` is the session (0..n-1) of query ``i``; ``weights`` is the
    ``[resamples, n]`` matrix of how often each session is drawn in each resample.
    """

    def __init__(
        self,
        sessions: I64,
        n_sessions: int,
        *,
        resamples: int = DEFAULT_RESAMPLES,
        seed: int = DEFAULT_SEED,
        level: float = LEVEL,
    ) -> None:
        self.sessions = np.asarray(sessions, np.int64)
        self.n_sessions = n_sessions
        self.level = level
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, max(n_sessions, 1), size=(resamples, n_sessions))
        cells = (np.arange(resamples)[:, None] * n_sessions + draws).ravel()
        counts = np.bincount(cells, minlength=resamples * n_sessions)
        self.weights = counts.reshape(resamples, n_sessions).astype(np.float64)

    def estimate(self, values: F64, mask: NDArray[np.bool_] | None = None) -> Estimate:
        """Mean of ``values`` over the queries in ``mask`` (all by default), with its interval."""
        keep = np.ones(len(values), bool) if mask is None else mask
        sums = np.bincount(self.sessions[keep], weights=values[keep], minlength=self.n_sessions)
        counts = np.bincount(self.sessions[keep], minlength=self.n_sessions).astype(np.float64)
        total = float(counts.sum())
        if total == 0:
            return Estimate(0.0, 0.0, 0.0)
        value = float(sums.sum()) / total
        resampled_counts = self.weights @ counts
        resampled = np.divide(
            self.weights @ sums,
            resampled_counts,
            out=np.full(len(self.weights), value),
            where=resampled_counts > 0,
        )
        tail = (1.0 - self.level) / 2.0 * 100.0
        low, high = np.percentile(resampled, [tail, 100.0 - tail])
        return Estimate(value, float(low), float(high))

    def difference(self, a: F64, b: F64, mask: NDArray[np.bool_] | None = None) -> Estimate:
        """Mean of ``a - b`` (two methods' per-query values on the same queries), paired."""
        return self.estimate(a - b, mask)


def estimates(
    bootstrap: SessionBootstrap,
    ranks: I64,
    gains: I64,
    subsets: Mapping[str, NDArray[np.bool_]],
    cutoff: int = CUTOFF,
) -> dict[str, dict[str, Estimate]]:
    """``{subset: {metric: Estimate}}`` of one method's ranks."""
    values = per_query(ranks, gains, cutoff)
    return {
        name: {m: bootstrap.estimate(values[m], mask) for m in METRICS}
        for name, mask in subsets.items()
    }
