from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from features.artifacts import fit_artifacts
from features.candidates import Candidates
from features.context import state_context
from features.session import SessionEvent, fold_events
from models.evaluate import (
    Evaluation,
    method_ranks,
    ndcg_single,
    report_markdown,
    summary_table,
    write_report,
)
from models.labelled_sessions import LabelledPlay, Session
from models.recommender import Scored


def test_ndcg_of_a_single_relevant_track() -> None:
    assert ndcg_single(2, 1) == 1.0
    assert ndcg_single(1, 1) == 1.0
    assert ndcg_single(2, 3) == pytest.approx(1 / math.log2(4))
    assert ndcg_single(2, 10) == pytest.approx(1 / math.log2(11))
    assert ndcg_single(2, 11) == 0.0
    assert ndcg_single(0, 1) == 0.0


def test_method_ranks_order_the_same_candidates_three_ways() -> None:
    # d follows a three times, b follows a twice, c once; popularity: b > c > d > a... by plays.
    plays = [("a", "d"), ("a", "d"), ("a", "d"), ("a", "b"), ("a", "b"), ("a", "c")]
    sessions = [
        Session(f"s{i}", "u", (LabelledPlay(x, "listened"), LabelledPlay(y, "listened")))
        for i, (x, y) in enumerate(plays)
    ]
    sessions += [Session(f"p{i}", "u", (LabelledPlay("b", "listened"),)) for i in range(5)]
    sessions += [Session(f"q{i}", "u", (LabelledPlay("c", "listened"),)) for i in range(4)]
    art = fit_artifacts(sessions, embedding_dim=1)
    ctx = state_context(fold_events([SessionEvent("start", "a", 1, None)]), art)
    tracks = np.array([art.index[t] for t in ("b", "c", "d")], np.int32)
    scored = Scored(
        ctx,
        Candidates(tracks, np.zeros(3, np.int8)),
        np.array([0.1, 0.9, 0.1], np.float32),  # ranker: c, then the tie b/d by id: b, d
    )
    ranks = [method_ranks(scored, art, i) for i in range(3)]
    assert [r["popularity"] for r in ranks] == [1, 2, 3]  # b 7 plays, c 5, d 3
    assert [r["colisten"] for r in ranks] == [2, 3, 1]  # d 3 times after a, b 2, c 1
    assert [r["ranker"] for r in ranks] == [2, 1, 3]


def evaluation() -> Evaluation:
    return Evaluation(
        sessions=10,
        queries=150,
        positive_queries=70,
        listened_queries=50,
        candidates=200,
        candidate_recall=0.75,
        candidate_recall_positive=0.8,
        ndcg_at_10={"popularity": 0.07, "colisten": 0.42, "ranker": 0.46},
        hitrate_at_10={"popularity": 0.12, "colisten": 0.52, "ranker": 0.55},
        rows_scored=14000,
        parity_max_abs_diff=2e-7,
    )


def test_report_shows_all_three_methods_side_by_side(tmp_path: Path) -> None:
    e = evaluation()
    assert e.best_baseline == "colisten"
    text = report_markdown(e, {"version": "v1", "data": "real: test data"})
    assert "| colisten | 0.4200 | 0.5200 |" in text
    assert "| ranker | 0.4600 | 0.5500 |" in text
    assert "+0.0400" in text
    assert "Candidate recall@200: **0.7500**" in text
    write_report(tmp_path, e, {"version": "v1", "data": "real"})
    assert (tmp_path / "metrics.png").stat().st_size > 1000
    assert '"candidate_recall": 0.75' in (tmp_path / "metrics.json").read_text()
    assert "ranker" in summary_table(e)
