from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from features.artifacts import SessionLike
from models.baselines import BASELINES, Catalogue, Method, NextTrackScorer, Transitions
from models.baselines.knn import SessionKnn
from models.datasets import synthetic_sessions
from models.evaluate import Evaluation, summary_table, write_report
from models.labelled_sessions import LabelledPlay, Session, split_sessions
from models.ranking_queries import session_queries
from models.recommender import Recommender
from models.registry import latest_version
from models.served_evaluation import SERVED, evaluate_served
from tests.support.tiny_models import TINY_SESSIONS, shared_two_versions


@pytest.fixture(scope="module")
def recommender() -> Recommender:
    registry, _, _ = shared_two_versions()
    version = latest_version(registry)
    assert version is not None
    return Recommender.load(registry / version)


def test_served_figures_are_those_of_the_lists_the_recommender_returns(
    recommender: Recommender,
) -> None:
    sessions = synthetic_sessions(TINY_SESSIONS, seed=7)
    train, _, test = split_sessions(sessions, seed=1)
    test = test[:8]
    result = evaluate_served(recommender, train, test, resamples=200)
    queries = [q for s in test for q in session_queries(s)]
    hits = repeats = 0
    for q in queries:
        ids = [r.track_id for r in recommender.recommend([q.state], 10)[0]]
        hits += q.next_track in ids
        repeats += q.next_track in q.state.played
    assert result.queries == len(queries) == sum(len(s.plays) - 1 for s in test)
    assert result.repeat_queries == repeats
    assert result.subset_queries["non_repeat"] == len(queries) - repeats
    served = result.methods[SERVED].figures
    assert served["all"]["hr"]["value"] == pytest.approx(hits / len(queries))
    # Lists never hold a played track, so leaving repeats out can only raise the hit rate.
    assert served["non_repeat"]["hr"]["value"] >= served["all"]["hr"]["value"]
    assert set(result.methods) == {SERVED, *(m.name for m in BASELINES)}
    for name, method in result.methods.items():
        for subset in ("all", "non_repeat", "listened"):
            for metric in ("hr", "mrr", "ndcg"):
                e = method.figures[subset][metric]
                assert e["low"] <= e["value"] <= e["high"], (name, subset, metric)
        assert method.cpu_ms_per_query > 0
    assert result.best_baseline in {m.name for m in BASELINES}
    assert set(result.served_minus_best) == {"hr", "mrr", "ndcg"}


def _planted(test: list[Session], pair: tuple[str, str]) -> list[Session]:
    """The test sessions with, appended to each, a known pair never seen in training (several
    times) and a sequence of tracks that exist only in the test split."""
    a, b = pair
    extra = [*([a, b] * 3), "leak-1", "leak-2", "leak-3", "leak-1", "leak-2", "leak-3"]
    tail = tuple(LabelledPlay(t, "listened") for t in extra)
    return [replace(s, plays=s.plays + tail) for s in test]


def _unseen_pair(train: Sequence[Session]) -> tuple[str, str]:
    """Two training tracks that never share a training session."""
    together: set[tuple[str, str]] = set()
    for s in train:
        tracks = sorted({p.track_id for p in s.plays})
        together.update(itertools.combinations(tracks, 2))
    tracks = sorted({p.track_id for s in train for p in s.plays})
    for a, b in itertools.combinations(tracks, 2):
        if (a, b) not in together:
            return a, b
    raise AssertionError("every pair of training tracks co-occurs")


def test_transitions_planted_in_test_sessions_reach_no_baseline(
    recommender: Recommender, tmp_path: Path
) -> None:
    sessions = synthetic_sessions(TINY_SESSIONS, seed=7)
    train, _, test = split_sessions(sessions, seed=1)
    pair = _unseen_pair(train)
    planted = _planted(test[:6], pair)
    seen: dict[str, list[str]] = {}
    fitted: dict[str, tuple[Catalogue, NextTrackScorer]] = {}

    def spying(method: Method) -> Method:
        def fit(train_sessions: Sequence[SessionLike], catalogue: Catalogue) -> NextTrackScorer:
            ids = [s.session_id for s in train_sessions if isinstance(s, Session)]
            seen[method.name] = ids
            scorer = method.fit(train_sessions, catalogue)
            fitted[method.name] = (catalogue, scorer)
            return scorer

        return Method(method.name, method.description, fit)

    evaluate_served(
        recommender, train, planted, methods=[spying(m) for m in BASELINES], resamples=50
    )
    test_ids = {s.session_id for s in planted}
    a, b = pair
    for method in BASELINES:
        assert len(seen[method.name]) == len(train)
        assert not set(seen[method.name]) & test_ids, method.name
        catalogue, scorer = fitted[method.name]
        assert not {"leak-1", "leak-2", "leak-3"} & set(catalogue.track_ids), method.name
        # The planted a -> b (and b, a -> b...): no count, and no neighbour session holds both.
        prefixes = {Transitions: ([a], [b, a], [a, b, a]), SessionKnn: ([a],)}
        if isinstance(scorer, Transitions | SessionKnn):
            for prefix in prefixes[type(scorer)]:
                proposal = scorer.propose(catalogue.indices(prefix))
                at = np.flatnonzero(proposal.tracks == catalogue.index[b])
                assert len(at) == 0 or not proposal.keys[at].any(), (method.name, prefix)


def test_report_lists_every_method_with_intervals_and_cost(
    recommender: Recommender, tmp_path: Path
) -> None:
    sessions = synthetic_sessions(TINY_SESSIONS, seed=7)
    train, _, test = split_sessions(sessions, seed=1)
    served = evaluate_served(recommender, train, test[:5], resamples=100).to_json()
    evaluation = Evaluation(
        sessions=5,
        queries=served["queries"],
        ndcg_at_10={"popularity": 0.1, "colisten": 0.4, "ranker": 0.5},
        hitrate_at_10={"popularity": 0.1, "colisten": 0.5, "ranker": 0.6},
        served=served,
    )
    write_report(tmp_path, evaluation, {"version": "v1", "data": "synthetic"})
    text = (tmp_path / "report.md").read_text()
    for name, result in served["methods"].items():
        f = result["figures"]["non_repeat"]["mrr"]
        cell = f"{f['value']:.4f} [{f['low']:.4f}, {f['high']:.4f}]"
        assert f"| {name} | " in text
        assert cell in text
        assert f"{result['cpu_ms_per_query']:.3f}" in text
    assert f"the {served['repeat_queries']} positions whose next track was already played" in text
    assert (
        f"Best baseline over non-repeat positions (by MRR@10): **{served['best_baseline']}**"
        in text
    )
    assert text.index("Served lists against") < text.index("Candidate rerank (secondary)")
    stored = json.loads((tmp_path / "metrics.json").read_text())["evaluation"]
    assert Evaluation(**stored).served == served
    assert (tmp_path / "metrics.png").stat().st_size > 1000
    table = summary_table(evaluation)
    assert all(name in table for name in served["methods"])
