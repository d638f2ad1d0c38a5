"""The model registry: a folder with one sub-folder per model version and a ``latest`` pointer.

``latest`` is a text file holding the name of the latest version folder. It is replaced
atomically (write a temporary file, then ``os.replace``), so readers see the old or the new
version, never a partial one. ``history`` holds the versions ``latest`` named before, one per
line, newest last (``nowplaying models rollback`` goes back along it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from nowplaying.readiness import DependencyStatus, error_detail

LATEST: Final = "latest"
HISTORY: Final = "history"
MODEL_FILE: Final = "model.onnx"
METADATA_FILE: Final = "metadata.json"
#: LightGBM's own text model of the same booster (for comparisons and inspection).
LIGHTGBM_FILE: Final = "lightgbm.txt"


class ModelNotFoundError(FileNotFoundError):
    """No usable model version; the message says where it looked and what to run."""


def resolve_version_dir(model_dir: Path, version: str | None = None) -> Path:
    """The folder of ``version``, or of the version named by ``latest`` when it is None."""
    if version is None:
        pointer = model_dir / LATEST
        try:
            version = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ModelNotFoundError(
                f"no model in {model_dir} (no '{LATEST}' pointer): run `nowplaying train` "
                "(or `nowplaying train --synthetic`) first"
            ) from None
        if not version:
            raise ModelNotFoundError(f"{pointer} is empty")
    version_dir = model_dir / version
    for name in (MODEL_FILE, METADATA_FILE):
        if not (version_dir / name).is_file():
            raise ModelNotFoundError(f"model version {version!r} in {model_dir} has no {name}")
    return version_dir


def registry_status(
    model_dir: Path, version: str | None = None
) -> tuple[str | None, DependencyStatus]:
    """The readiness probe of the registry: the version it serves (``version``, or the one
    ``latest`` names), from its folder and metadata; None and the reason when there is none."""
    try:
        version_dir = resolve_version_dir(model_dir, version)
        metadata: dict[str, Any] = json.loads((version_dir / METADATA_FILE).read_text())
    except Exception as exc:  # a probe reports any failure as data
        return None, DependencyStatus(ok=False, detail=error_detail(exc))
    served = str(metadata.get("version") or version_dir.name)
    return served, DependencyStatus(ok=True, detail=f"version {served} in {version_dir}")


def publish_version(model_dir: Path, version_dir: Path, *, record_history: bool = True) -> None:
    """Point ``latest`` at ``version_dir`` (a folder directly inside ``model_dir``), atomically;
    the version it named before is appended to ``history`` (unless ``record_history`` is off)."""
    if version_dir.resolve().parent != model_dir.resolve():
        raise ValueError(f"{version_dir} is not a version folder of {model_dir}")
    previous = latest_version(model_dir)
    if record_history and previous and previous != version_dir.name:
        write_history(model_dir, [*read_history(model_dir), previous])
    _write_atomically(model_dir / LATEST, version_dir.name + "\n")


def latest_version(model_dir: Path) -> str | None:
    """The version ``latest`` names, or None."""
    try:
        return (model_dir / LATEST).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def read_history(model_dir: Path) -> list[str]:
    """The versions ``latest`` named before, oldest first."""
    try:
        text = (model_dir / HISTORY).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_history(model_dir: Path, versions: list[str]) -> None:
    _write_atomically(model_dir / HISTORY, "".join(f"{v}\n" for v in versions))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def list_versions(model_dir: Path) -> list[str]:
    """Version folder names holding a model, oldest first (names start with a UTC timestamp)."""
    if not model_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in model_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MODEL_FILE).is_file()
    )
