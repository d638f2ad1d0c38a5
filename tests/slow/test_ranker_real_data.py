"""The acceptance run on the real MSSD-derived sessions: all 10,000 of them, default settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.datasets import load_mssd
from models.train import train_model

REAL_MSSD = Path("../shared/data/mssd-derived-sessions/mini-spotify-data.csv")


@pytest.mark.slow
def test_ranker_beats_the_best_baseline_on_the_real_test_split(tmp_path: Path) -> None:
    if not REAL_MSSD.exists():
        pytest.fail(f"the real sessions are needed: {REAL_MSSD} is missing")
    sessions = load_mssd(REAL_MSSD)
    version_dir = train_model(sessions, tmp_path, data_info={"kind": "file"})
    metrics = json.loads((version_dir / "metadata.json").read_text())["metrics"]
    ndcg = metrics["ndcg_at_10"]
    best_baseline = max(ndcg["popularity"], ndcg["colisten"])
    assert ndcg["ranker"] > best_baseline
    assert metrics["hitrate_at_10"]["ranker"] > metrics["hitrate_at_10"]["popularity"]
    assert metrics["queries"] > 15_000  # the whole test split, every prefix
    assert 0.5 < metrics["candidate_recall"] <= 1.0
    assert metrics["parity_max_abs_diff"] <= 1e-4
