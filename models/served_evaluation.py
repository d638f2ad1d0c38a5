"""Evaluation of the SERVED lists against baselines that rank the full catalogue.

Every position of every held-out session is a query (:func:`models.ranking_queries.
session_queries`: the state folded by :func:`features.session.apply_event` over the records the
stream derives from the session's events, right after a ``track_start``). The target is the
actual next track, whatever its outcome.

* ``served``: the top-10 list of :meth:`models.recommender.Recommender.recommend`, the very call
  the stream worker makes, on batches of states (``batch_states``, the worker's default batch);
* each baseline of :data:`models.baselines.BASELINES` (or the ``methods`` given), fitted HERE on
  the training sessions only, ranks the whole catalogue for the prefix of played tracks,
  excluding them.

Figures (:mod:`models.ranking_metrics`): HR@10, MRR@10 and graded NDCG@10 over three sets of
queries: ``all`` positions; ``non_repeat``, those whose next track is not already played in the
session (no list can hold a repeat: they are excluded by design); ``listened``, those whose next
track was listened through. Each with a 95% bootstrap interval over sessions, the same resamples
for every method. Cost: CPU time (``time.process_time``) per query of producing the lists (for
the baselines: proposing and taking the top 10; for ``served``: the whole ``recommend`` call),
and the CPU time of fitting.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from features.session import SessionState
from models.baselines import BASELINES, Catalogue, Method, Proposal, StateAwareScorer, top_k
from models.labelled_sessions import Session
from models.ranking_metrics import (
    CUTOFF,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    I64,
    METRICS,
    Estimate,
    SessionBootstrap,
    estimates,
    per_query,
)
from models.ranking_queries import Query, session_queries
from models.recommender import Recommender

SERVED: Final = "served"
#: The version's sequence model alone: its top 10 over the catalogue, played tracks excluded.
SEQUENCE: Final = "sequence"
SERVED_SEQUENCE: Final = (
    "the served version's sequence model alone (sequence.onnx, the model whose scores the "
    "ranker reads): the catalogue by its logits, played tracks excluded"
)
SUBSETS: Final = ("all", "non_repeat", "listened")
#: The worker's default batch (NP_BATCH_MAX_EVENTS).
DEFAULT_BATCH_STATES: Final = 200


@dataclass
class MethodResult:
    description: str
    #: {subset: {metric: {"value", "low", "high"}}}
    figures: dict[str, dict[str, dict[str, float]]]
    cpu_ms_per_query: float
    fit_cpu_seconds: float


@dataclass
class ServedEvaluation:
    sessions: int = 0
    queries: int = 0
    repeat_queries: int = 0  # next track already played in the session: left out of non_repeat
    unknown_next: int = 0  # next track never seen in the training split
    listened_queries: int = 0
    cutoff: int = CUTOFF
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    subset_queries: dict[str, int] = field(default_factory=dict)
    methods: dict[str, MethodResult] = field(default_factory=dict)
    #: the best baseline by MRR@10 over non-repeat queries, and served minus it (paired)
    best_baseline: str = ""
    served_minus_best: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class _Queries:
    """The test queries, flattened: session number, prefix and target of each."""

    items: list[Query]
    session_no: I64
    prefixes: list[I64]  # catalogue indices of the tracks started so far, current last
    targets: I64  # catalogue index of the next track, -1 unknown
    gains: I64
    subsets: dict[str, NDArray[np.bool_]]


def evaluate_served(
    recommender: Recommender,
    train: Sequence[Session],
    test: Sequence[Session],
    *,
    methods: Sequence[Method] = BASELINES,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    batch_states: int = DEFAULT_BATCH_STATES,
    progress: bool = False,
) -> ServedEvaluation:
    """Served lists and every method on the test sessions; ``methods`` see ``train`` only."""
    catalogue = Catalogue.of(train)
    queries = _collect(test, catalogue)
    bootstrap = SessionBootstrap(queries.session_no, len(test), resamples=resamples, seed=seed)
    ranks: dict[str, I64] = {}
    results: dict[str, MethodResult] = {}
    ranks[SERVED], cpu = _served_ranks(recommender, queries, batch_states, progress)
    results[SERVED] = MethodResult(
        f"served lists: Recommender.recommend of model {recommender.model_version}",
        {},
        cpu,
        0.0,
    )
    for method in methods:
        started = time.process_time()
        served_sequence = (
            method.name == SEQUENCE
            and recommender.sequence is not None
            and recommender.artifacts.track_ids == catalogue.track_ids
        )
        scorer = ServedSequence(recommender) if served_sequence else method.fit(train, catalogue)
        fitted = time.process_time() - started
        bar = tqdm(queries.prefixes, desc=method.name, disable=not progress, leave=False)
        found = np.zeros(len(queries.items), np.int64)
        by_state = scorer.propose_state if isinstance(scorer, StateAwareScorer) else None
        started = time.process_time()
        for i, prefix in enumerate(bar):
            item = queries.items[i]
            proposal = by_state(prefix, item.state) if by_state else scorer.propose(prefix)
            top = top_k(proposal, catalogue, prefix, CUTOFF)
            found[i] = _rank_in(top, int(queries.targets[i]))
        elapsed = time.process_time() - started
        ranks[method.name] = found
        results[method.name] = MethodResult(
            SERVED_SEQUENCE if served_sequence else method.description,
            {},
            _ms_per(elapsed, len(found)),
            round(fitted, 3),
        )
    for name, method_ranks in ranks.items():
        figures = estimates(bootstrap, method_ranks, queries.gains, queries.subsets)
        results[name].figures = {
            s: {m: e.to_json() for m, e in per_metric.items()} for s, per_metric in figures.items()
        }
    best, comparison = _against_best(bootstrap, ranks, queries, [m.name for m in methods])
    return ServedEvaluation(
        sessions=len(test),
        queries=len(queries.items),
        repeat_queries=int((~queries.subsets["non_repeat"]).sum()),
        unknown_next=int((queries.targets < 0).sum()),
        listened_queries=int(queries.subsets["listened"].sum()),
        resamples=resamples,
        seed=seed,
        subset_queries={s: int(mask.sum()) for s, mask in queries.subsets.items()},
        methods=results,
        best_baseline=best,
        served_minus_best=comparison,
    )


def _collect(test: Sequence[Session], catalogue: Catalogue) -> _Queries:
    items: list[Query] = []
    session_no: list[int] = []
    prefixes: list[I64] = []
    targets: list[int] = []
    repeat: list[bool] = []
    for number, session in enumerate(test):
        sequence = catalogue.indices([p.track_id for p in session.plays])
        for query in session_queries(session):
            items.append(query)
            session_no.append(number)
            prefixes.append(sequence[: query.position])
            targets.append(int(sequence[query.position]))
            repeat.append(query.next_track in query.state.played)
    gains = np.array([q.gain for q in items], np.int64)
    return _Queries(
        items,
        np.array(session_no, np.int64),
        prefixes,
        np.array(targets, np.int64),
        gains,
        {
            "all": np.ones(len(items), bool),
            "non_repeat": ~np.array(repeat, bool),
            "listened": gains == 2,
        },
    )


def _served_ranks(
    recommender: Recommender, queries: _Queries, batch_states: int, progress: bool
) -> tuple[I64, float]:
    found = np.zeros(len(queries.items), np.int64)
    bar = tqdm(total=len(found), desc=SERVED, disable=not progress, leave=False)
    elapsed = 0.0
    for start in range(0, len(found), batch_states):
        batch = queries.items[start : start + batch_states]
        began = time.process_time()
        lists = recommender.recommend([q.state for q in batch], CUTOFF)
        elapsed += time.process_time() - began
        for offset, (query, recs) in enumerate(zip(batch, lists, strict=True)):
            ids = [r.track_id for r in recs]
            found[start + offset] = (
                ids.index(query.next_track) + 1 if query.next_track in ids else 0
            )
        bar.update(len(batch))
    bar.close()
    return found, _ms_per(elapsed, len(found))


class ServedSequence:
    """The served version's own sequence model as the ``sequence`` baseline (the model whose
    scores the ranker reads), instead of fitting another one: the catalogue by its logits."""

    def __init__(self, recommender: Recommender) -> None:
        assert recommender.sequence is not None
        self._sequence = recommender.sequence
        self._artifacts = recommender.artifacts

    def propose(self, prefix: I64) -> Proposal:
        raise NotImplementedError("the served sequence model reads the session state")

    def propose_state(self, prefix: I64, state: SessionState) -> Proposal:
        scores = self._sequence.scores([state], self._artifacts)[0]
        return Proposal.dense(scores.astype(np.float64))


def _rank_in(top: I64, target: int) -> int:
    if target < 0:
        return 0
    hit = np.flatnonzero(top == target)
    return int(hit[0]) + 1 if len(hit) else 0


def _ms_per(seconds: float, count: int) -> float:
    return round(1000.0 * seconds / max(count, 1), 4)


def _against_best(
    bootstrap: SessionBootstrap,
    ranks: dict[str, I64],
    queries: _Queries,
    baselines: list[str],
) -> tuple[str, dict[str, dict[str, float]]]:
    """The best baseline by MRR@10 over non-repeat queries; served minus it per metric there,
    paired over the same resampled sessions, with the relative lift of the point estimates."""
    if not baselines:
        return "", {}
    mask = queries.subsets["non_repeat"]
    values = {name: per_query(r, queries.gains) for name, r in ranks.items()}
    point = {name: bootstrap.estimate(values[name]["mrr"], mask).value for name in baselines}
    best = max(baselines, key=lambda name: point[name])
    out: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        diff: Estimate = bootstrap.difference(values[SERVED][metric], values[best][metric], mask)
        base = bootstrap.estimate(values[best][metric], mask).value
        out[metric] = {**diff.to_json(), "relative": diff.value / base if base else 0.0}
    return best, out
