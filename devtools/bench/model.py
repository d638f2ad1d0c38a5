"""The benchmark's models: the specs it measures, found in or trained into their registries.

A registry's latest version is used when it was trained as the spec asks for this code's
features; otherwise one is trained first (``nowplaying train``, on the real data when present,
else on the SYNTHETIC sessions). Registries live under the repository's ``var/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devtools.bench.procs import nowplaying_exe
from devtools.paths import VAR_DIR
from models.datasets import MSSD_FILE
from models.recommender import ModelMismatchError, check_metadata
from models.registry import LIGHTGBM_FILE, METADATA_FILE, ModelNotFoundError, resolve_version_dir
from models.train import TrainConfig
from nowplaying.settings import Settings

log = logging.getLogger("bench")


def bench_model_dir(args: argparse.Namespace, quick: bool) -> Path:
    """``--model-dir``, else the repository's ``var/bench-models`` (``-quick`` for --quick)."""
    given: Path | None = getattr(args, "model_dir", None)
    if given is not None:
        return given
    return VAR_DIR / ("bench-models-quick" if quick else "bench-models")


@dataclass(frozen=True)
class ModelSpec:
    trees: int
    leaves: int
    sessions: int | None = None  # None: all sessions of the data
    #: 0: all ``trees`` rounds are kept (the throughput target is stated for a 200-tree model,
    #: and early stopping would leave fewer, cheaper trees).
    early_stopping_rounds: int = TrainConfig.early_stopping_rounds


MAIN_MODEL = ModelSpec(200, 31, early_stopping_rounds=0)
SMALL_MODEL = ModelSpec(50, 15)
QUICK_MODEL = ModelSpec(20, 15, sessions=400)


def usable_model(model_dir: Path, spec: ModelSpec) -> Path | None:
    """The registry's latest version when it was trained as ``spec`` for this code's features."""
    try:
        version_dir = resolve_version_dir(model_dir)
        meta = json.loads((version_dir / METADATA_FILE).read_text())
        check_metadata(meta)
    except (ModelNotFoundError, ModelMismatchError, OSError, ValueError):
        return None
    params = meta.get("params", {})
    if (params.get("trees"), params.get("leaves")) != (spec.trees, spec.leaves):
        return None
    if params.get("early_stopping_rounds", TrainConfig.early_stopping_rounds) != (
        spec.early_stopping_rounds
    ):
        return None
    return version_dir if (version_dir / LIGHTGBM_FILE).is_file() else None


def ensure_model(settings: Settings, model_dir: Path, spec: ModelSpec) -> Path:
    """A model version trained as ``spec`` in ``model_dir``, trained first when there is none
    (on the real data when present, else on the SYNTHETIC sessions)."""
    found = usable_model(model_dir, spec)
    if found is not None:
        return found
    cmd = [nowplaying_exe(), "train", "--out", str(model_dir), "--no-progress"]
    cmd += ["--trees", str(spec.trees), "--leaves", str(spec.leaves)]
    cmd += ["--early-stopping-rounds", str(spec.early_stopping_rounds)]
    if spec.sessions is not None:
        cmd += ["--sessions", str(spec.sessions)]
    if not data_present(settings):
        cmd.append("--synthetic")
    log.warning("training a benchmark model: %s", " ".join(cmd))
    subprocess.run(cmd, check=True, timeout=3600, stdout=subprocess.DEVNULL)
    return resolve_version_dir(model_dir)


def quality_configs(
    settings: Settings, version_dir: Path, quick: bool, small_model: bool
) -> list[tuple[str, Path, int]]:
    """The configuration in use first, then cheaper ones: fewer candidates, and a smaller model
    when asked for (``--small-model``: trained once, ~3 minutes) or already trained."""
    n = settings.candidates
    main = model_label(version_dir)
    configs = [
        (f"{main}, {n} candidates (in use)", version_dir, n),
        (f"{main}, {n // 2} candidates", version_dir, n // 2),
        (f"{main}, {n // 4} candidates", version_dir, n // 4),
    ]
    small_registry = VAR_DIR / "bench-models-small"
    if not quick and (small_model or usable_model(small_registry, SMALL_MODEL) is not None):
        small_dir = ensure_model(settings, small_registry, SMALL_MODEL)
        configs.append((f"{model_label(small_dir)}, {n} candidates", small_dir, n))
    return configs


def model_label(version_dir: Path) -> str:
    """``134 trees (200, early-stopped) / 31 leaves``: the trees the model really has."""
    summary = model_summary(version_dir)
    meta = json.loads((version_dir / METADATA_FILE).read_text())
    asked = meta.get("params", {}).get("trees")
    trees = summary.get("trees") or asked
    stopped = f" ({asked}, early-stopped)" if asked and trees != asked else ""
    return f"{trees} trees{stopped} / {summary.get('leaves')} leaves"


def data_present(settings: Settings) -> bool:
    return (settings.data_dir / MSSD_FILE).is_file()


def model_summary(version_dir: Path) -> dict[str, object]:
    """What the report says about the model: version, trees (after early stopping), leaves,
    NDCG@10 of its offline evaluation."""
    try:
        meta = json.loads((version_dir / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {"version": version_dir.name}
    params = meta.get("params", {})
    ndcg = meta.get("metrics", {}).get("ndcg_at_10", {})
    return {
        "version": version_dir.name,
        "trees": meta.get("model", {}).get("best_iteration"),
        "leaves": params.get("leaves"),
        "candidates": params.get("candidates"),
        "NDCG@10": round(ndcg["ranker"], 4) if "ranker" in ndcg else None,
        "data": meta.get("data", {}).get("description"),
    }
