"""Ablation of the ranker's feature groups, measured on the SERVED lists of the test split.

With ``TrainConfig(ablation=True)`` (``nowplaying train --ablation``), after the model itself,
the ranker is trained again on the very same training and validation rows with one feature
group's columns set to zero (a tree ensemble never splits on a constant column, so the ranker
then ignores them), by the same LightGBM recipe and seed:

* ``without sequence``: no sequence-model column (:data:`features.rows.SEQUENCE_FEATURES`);
* ``without higher order``: no order-2/3 transition column
  (:data:`features.rows.HIGHER_ORDER_FEATURES`).

Each variant's graph is served by the same :class:`models.recommender.Recommender` (the same
candidates, sequence model and artifacts) and evaluated by
:func:`models.served_evaluation.evaluate_served` without re-running the baselines; the result
is the served figures of each variant (and of ``everything``, the model itself) side by side.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from features.artifacts import TrackArtifacts
from features.rows import FEATURE_NAMES, HIGHER_ORDER_FEATURES, N_FEATURES, SEQUENCE_FEATURES
from models.export import export_onnx, onnx_session
from models.labelled_sessions import Session
from models.ranking_queries import RankingData
from models.recommender import Recommender, load_sequence
from models.registry import METADATA_FILE
from models.served_evaluation import SERVED, evaluate_served

if TYPE_CHECKING:
    from models.train import TrainConfig

EVERYTHING: Final = "everything"
VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "without sequence": SEQUENCE_FEATURES,
    "without higher order": HIGHER_ORDER_FEATURES,
}


def zeroed(data: RankingData, names: Sequence[str]) -> RankingData:
    rows = data.rows.copy()
    rows[:, [FEATURE_NAMES.index(n) for n in names]] = 0.0
    return replace(data, rows=rows)


def ablation_table(
    version_dir: Path,
    served: dict[str, Any],
    *,
    train_rows: RankingData,
    val_rows: RankingData,
    cfg: TrainConfig,
    train: Sequence[Session],
    test: Sequence[Session],
) -> dict[str, Any]:
    """{variant: {"columns", "trees", "figures" (subset -> metric -> estimate),
    "cpu_ms_per_query"}}, ``everything`` taken from ``served``."""
    from models.train import fit_ranker  # noqa: PLC0415 - models.train imports this module

    metadata = json.loads((version_dir / METADATA_FILE).read_text(encoding="utf-8"))
    artifacts = TrackArtifacts.load(version_dir)
    sequence = load_sequence(version_dir)
    own = served["methods"][SERVED]
    out: dict[str, Any] = {
        EVERYTHING: {
            "columns": [],
            "trees": metadata["model"]["best_iteration"],
            "figures": own["figures"],
            "cpu_ms_per_query": own["cpu_ms_per_query"],
        }
    }
    for name, columns in VARIANTS.items():
        booster = fit_ranker(zeroed(train_rows, columns), zeroed(val_rows, columns), cfg, False)
        path = version_dir.parent / f".ablation-{version_dir.name}.onnx"
        try:
            export_onnx(booster, N_FEATURES, path)
            recommender = Recommender(
                onnx_session(path, intra_op_threads=1),
                artifacts,
                metadata,
                candidates=cfg.served_candidates,
                sequence=sequence,
            )
            result = evaluate_served(recommender, train, test, methods=()).methods[SERVED]
        finally:
            path.unlink(missing_ok=True)
        out[name] = {
            "columns": list(columns),
            "trees": booster.current_iteration(),
            "figures": result.figures,
            "cpu_ms_per_query": result.cpu_ms_per_query,
        }
    return out
