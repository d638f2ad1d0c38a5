"""``nowplaying models``: list, the promote gate and rollback, on temporary registries holding
tiny real models (LightGBM exported to ONNX, trained on synthetic sessions)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models.registry import LATEST, latest_version, read_history
from nowplaying.cli import main
from tests.support.tiny_models import shared_two_versions, train_tiny


@pytest.fixture(scope="module")
def trained() -> tuple[Path, str, str]:
    """A registry with two versions (``latest`` names the first); never changed by tests."""
    return shared_two_versions()


@pytest.fixture
def registry(trained: tuple[Path, str, str], tmp_path: Path) -> tuple[Path, str, str]:
    """A private copy of the trained registry, for tests that promote and roll back."""
    folder, first, second = trained
    copy = tmp_path / "registry"
    shutil.copytree(folder, copy)
    return copy, first, second


def ndcg(folder: Path, version: str) -> float:
    metadata = json.loads((folder / version / "metadata.json").read_text())
    return float(metadata["metrics"]["ndcg_at_10"]["ranker"])


def edit_metadata(folder: Path, version: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / version / "metadata.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))


def models(folder: Path, *args: str) -> int:
    return main(["models", "--model-dir", str(folder), *args])


def test_list_shows_every_version_its_figures_and_the_latest(
    trained: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, first, second = trained
    assert models(folder, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[-6]: line for line in lines if first in line or second in line}
    assert set(rows) == {first, second}
    assert rows[first].startswith("* ") and rows[second].startswith("  ")
    for version in (first, second):
        assert f"{ndcg(folder, version):.4f}" in rows[version]


def test_promote_moves_latest_and_rollback_goes_back(
    registry: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, first, second = registry
    tolerance = str(abs(ndcg(folder, first) - ndcg(folder, second)) + 0.01)
    assert models(folder, "promote", second, "--tolerance", tolerance) == 0
    assert latest_version(folder) == second
    assert read_history(folder) == [first]
    assert f"{first} -> {second}" in capsys.readouterr().out
    assert models(folder, "promote", second) == 0  # already latest: a no-op
    assert read_history(folder) == [first]
    assert models(folder, "rollback") == 0
    assert latest_version(folder) == first
    assert read_history(folder) == []
    assert models(folder, "rollback") == 1  # nothing left to go back to
    assert latest_version(folder) == first
    assert "nothing to roll back" in capsys.readouterr().err


def test_a_lower_ndcg_beyond_the_tolerance_is_refused(
    registry: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, first, second = registry
    scores = {first: ndcg(folder, first), second: ndcg(folder, second)}
    worse, better = sorted(scores, key=scores.__getitem__)
    drop = scores[better] - scores[worse]
    assert drop > 0.001, scores  # two different models
    assert models(folder, "promote", better, "--tolerance", "1") == 0
    assert models(folder, "promote", worse, "--tolerance", str(drop / 2)) == 1
    err = capsys.readouterr().err
    assert f"refused to promote {worse}" in err and "below the latest" in err
    assert latest_version(folder) == better
    assert models(folder, "promote", worse, "--tolerance", str(drop * 2)) == 0
    assert latest_version(folder) == worse


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda m: m.update(feature_version="0"), "feature mismatch"),
        (lambda m: m["metrics"].update(parity_max_abs_diff=None), "parity check missing"),
        (lambda m: m["metrics"].update(parity_max_abs_diff=0.02), "parity check failed"),
        (lambda m: m.update(metrics={}), "no test NDCG@10"),
    ],
    ids=["feature-version", "parity-missing", "parity-failed", "trained-with-no-eval"],
)
def test_the_gate_refuses_and_says_why_unless_forced(
    registry: tuple[Path, str, str],
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, Any]], None],
    complaint: str,
) -> None:
    folder, first, second = registry
    edit_metadata(folder, second, change)
    if complaint == "no test NDCG@10":  # --no-eval writes no metrics.json either
        (folder / second / "metrics.json").unlink()
    assert models(folder, "promote", second, "--tolerance", "1") == 1
    err = capsys.readouterr().err
    assert complaint in err and "--force" in err
    assert latest_version(folder) == first and read_history(folder) == []
    assert models(folder, "promote", second, "--tolerance", "1", "--force") == 0
    assert "forced past the gate" in capsys.readouterr().out
    assert latest_version(folder) == second and read_history(folder) == [first]


def test_a_model_that_does_not_load_is_refused(
    registry: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, first, second = registry
    (folder / second / "model.onnx").write_bytes(b"truncated")
    assert models(folder, "promote", second, "--tolerance", "1") == 1
    assert "does not load" in capsys.readouterr().err
    assert latest_version(folder) == first


def test_unknown_versions_and_paths_outside_the_registry_are_refused(
    registry: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, first, _ = registry
    outside = folder.parent / "elsewhere"
    shutil.copytree(folder / first, outside)
    assert models(folder, "promote", "20990101T000000Z-000000") == 1
    assert models(folder, "promote", "../elsewhere", "--force") == 1
    assert "not a version folder" in capsys.readouterr().err
    assert (folder / LATEST).read_text().strip() == first


def test_training_records_the_previous_latest_so_rollback_undoes_it(
    registry: tuple[Path, str, str],
) -> None:
    folder, first, _ = registry
    third = train_tiny(folder, seed=3, trees=3, publish=True)
    assert latest_version(folder) == third.name and read_history(folder) == [first]
    assert models(folder, "rollback") == 0
    assert latest_version(folder) == first
