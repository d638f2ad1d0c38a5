"""The sessions a model version was trained on, found again from its metadata, split as then."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.datasets import load_sessions
from models.labelled_sessions import Session, fingerprint, split_sessions
from models.registry import METADATA_FILE
from nowplaying.settings import Settings


def version_splits(
    settings: Settings, version_dir: Path
) -> tuple[list[Session], list[Session], list[Session], str]:
    """(train, validation, test, description) of the data named in the version's metadata,
    by its split seed. Raises ``ValueError`` when the training split is not the one the
    version was trained on (evaluating on it would leak)."""
    metadata: dict[str, Any] = json.loads((version_dir / METADATA_FILE).read_text("utf-8"))
    data = metadata.get("data", {})
    path = data.get("path")
    sessions, description = load_sessions(
        settings, Path(path) if path else None, data.get("kind") == "synthetic", data.get("limit")
    )
    train, val, test = split_sessions(sessions, seed=int(data.get("split_seed", 7)))
    if fingerprint(train) != data.get("train_fingerprint"):
        raise ValueError(f"the data's training split differs from the one {version_dir} used")
    return train, val, test, description
