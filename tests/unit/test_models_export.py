from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from models.export import export_onnx, onnx_input_width, onnx_scores, onnx_session


def adjacent_value_ranker() -> tuple[lgb.Booster, np.ndarray]:
    """A ranker whose splits fall between float32 values one step apart: LightGBM places the
    threshold between them in double precision, where no float32 lies."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 10.0, 64).astype(np.float32)
    above = np.nextafter(base, np.float32(np.inf))
    values = np.concatenate([base, above])
    is_above = np.repeat([False, True], len(base))
    order = rng.permutation(np.tile(np.arange(len(values)), 20))
    x = np.column_stack([values[order], rng.uniform(0, 1, len(order)).astype(np.float32)])
    labels = np.where(is_above[order], 2, 0)
    ranker = lgb.LGBMRanker(
        objective="lambdarank", n_estimators=20, num_leaves=15, min_child_samples=5, verbose=-1
    )
    ranker.fit(x, labels, group=[40] * (len(x) // 40))
    return ranker.booster_, x


def test_exported_graph_takes_lightgbms_branches_even_one_float32_step_apart(
    tmp_path: Path,
) -> None:
    booster, x = adjacent_value_ranker()
    thresholds = [
        t for tree in booster.dump_model()["tree_info"] for t in _thresholds(tree["tree_structure"])
    ]
    # The data does put thresholds where float32 rounding matters.
    assert any(float(np.float32(t)) != t for t in thresholds)
    path = tmp_path / "model.onnx"
    opsets = export_onnx(booster, 2, path)
    assert opsets["ai.onnx.ml"] >= 1
    session = onnx_session(path)
    assert onnx_input_width(session) == 2
    diff = np.abs(onnx_scores(session, x) - booster.predict(x))
    assert diff.max() <= 1e-5


def _thresholds(node: dict[str, object]) -> list[float]:
    if "left_child" not in node:
        return []
    left, right = node["left_child"], node["right_child"]
    assert isinstance(left, dict) and isinstance(right, dict)
    threshold = node["threshold"]
    assert isinstance(threshold, float)
    return [threshold, *_thresholds(left), *_thresholds(right)]


def test_onnx_session_options_are_set_deliberately(tmp_path: Path) -> None:
    booster, _ = adjacent_value_ranker()
    export_onnx(booster, 2, tmp_path / "m.onnx")
    session = onnx_session(tmp_path / "m.onnx", intra_op_threads=1)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    with pytest.raises(ValueError, match="expected one input"):
        onnx_input_width(_NoInputs())


class _NoInputs:
    def get_inputs(self) -> list[object]:
        return []
