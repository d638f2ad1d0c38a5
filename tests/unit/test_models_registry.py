from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import (
    ModelNotFoundError,
    list_versions,
    publish_version,
    resolve_version_dir,
)


def make_version(model_dir: Path, name: str) -> Path:
    version_dir = model_dir / name
    version_dir.mkdir(parents=True)
    (version_dir / "model.onnx").write_bytes(b"onnx")
    (version_dir / "metadata.json").write_text("{}")
    return version_dir


def test_latest_pointer_follows_the_last_published_version(tmp_path: Path) -> None:
    first = make_version(tmp_path, "20261128T100000Z-aaaaaa")
    second = make_version(tmp_path, "20261128T110000Z-bbbbbb")
    publish_version(tmp_path, first)
    assert resolve_version_dir(tmp_path) == first
    publish_version(tmp_path, second)
    assert resolve_version_dir(tmp_path) == second
    assert resolve_version_dir(tmp_path, "20261128T100000Z-aaaaaa") == first
    assert list_versions(tmp_path) == [first.name, second.name]
    # no temporary file left behind; the history holds the version ``latest`` named before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["history", "latest"]
    assert (tmp_path / "history").read_text() == f"{first.name}\n"


def test_empty_registry_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="nowplaying train"):
        resolve_version_dir(tmp_path)


def test_incomplete_version_is_rejected(tmp_path: Path) -> None:
    broken = tmp_path / "v1"
    broken.mkdir()
    (broken / "metadata.json").write_text("{}")
    (tmp_path / "latest").write_text("v1\n")
    with pytest.raises(ModelNotFoundError, match=r"model\.onnx"):
        resolve_version_dir(tmp_path)


def test_publishing_a_folder_outside_the_registry_is_refused(tmp_path: Path) -> None:
    outside = make_version(tmp_path / "elsewhere", "v1")
    with pytest.raises(ValueError, match="not a version folder"):
        publish_version(tmp_path / "registry", outside)
