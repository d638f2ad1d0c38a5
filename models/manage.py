"""``nowplaying models``: list the registry's versions, promote one to ``latest`` behind a gate,
roll back.

The gate (``promote`` refuses unless ``--force``, and says why) checks what training records in
the version's ``metadata.json``:

* its feature version (and feature names) equal this code's :data:`features.rows.FEATURE_VERSION`,
  and its ONNX graph and track artifacts load;
* its ONNX-vs-LightGBM parity was measured and is within :data:`PARITY_TOLERANCE`;
* its test-split NDCG@10 is not lower than the current latest's by more than the tolerance
  (a version trained with ``--no-eval`` has no NDCG and is refused). The figures of two versions
  are only comparable when both were evaluated on the same test split (same data, same split
  seed); otherwise the gate says so.

``history`` (next to ``latest``, kept by :func:`models.registry.publish_version`, so ``nowplaying
train`` records it too) holds the versions ``latest`` named before, one per line, newest last;
``rollback`` points ``latest`` back at the last one and drops it. Promote and rollback run under
an exclusive lock of the registry folder, and ``latest`` is replaced atomically.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from features.rows import FEATURE_VERSION
from models.evaluate import METRICS_FILE
from models.recommender import ModelMismatchError, Recommender, check_metadata
from models.registry import (
    METADATA_FILE,
    ModelNotFoundError,
    latest_version,
    list_versions,
    publish_version,
    read_history,
    resolve_version_dir,
    write_history,
)
from nowplaying.settings import Settings

LOCK: Final = ".lock"
#: Largest accepted |ONNX - LightGBM| score difference on the parity rows.
PARITY_TOLERANCE: Final = 1e-4
#: Default accepted drop of the test NDCG@10 below the current latest's.
NDCG_TOLERANCE: Final = 0.005


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What the registry knows of one version, from its ``metadata.json`` (and ``metrics.json``)."""

    name: str
    created_at: str
    feature_version: str
    ndcg_at_10: float | None  # the ranker's test-split NDCG@10
    best_baseline_ndcg: float | None
    parity_max_abs_diff: float | None
    test_split: str | None  # data fingerprint and split seed: equal means the same test sessions
    metadata: dict[str, Any]

    @classmethod
    def read(cls, version_dir: Path) -> VersionInfo:
        metadata = json.loads((version_dir / METADATA_FILE).read_text(encoding="utf-8"))
        evaluation = _evaluation(version_dir, metadata)
        ndcg: dict[str, float] = evaluation.get("ndcg_at_10") or {}
        baselines = [v for k, v in ndcg.items() if k != "ranker"]
        training_metrics = metadata.get("metrics") or {}
        data = metadata.get("data") or {}
        return cls(
            name=version_dir.name,
            created_at=str(metadata.get("created_at", "?")),
            feature_version=str(metadata.get("feature_version", "?")),
            ndcg_at_10=ndcg.get("ranker"),
            best_baseline_ndcg=max(baselines) if baselines else None,
            parity_max_abs_diff=training_metrics.get("parity_max_abs_diff"),
            test_split=f"{data.get('fingerprint')}/{data.get('split_seed')}" if data else None,
            metadata=metadata,
        )


def _evaluation(version_dir: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """The training-time test evaluation, else a later ``nowplaying evaluate`` run's."""
    if metadata.get("metrics"):
        return dict(metadata["metrics"])
    try:
        payload = json.loads((version_dir / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(payload.get("evaluation") or {})


@contextmanager
def registry_lock(model_dir: Path) -> Iterator[None]:
    """Exclusive lock of the registry (one promote or rollback at a time)."""
    with (model_dir / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the gate -------------------------------------------------------------------------------


def gate_problems(
    candidate: VersionInfo,
    current: VersionInfo | None,
    ndcg_tolerance: float = NDCG_TOLERANCE,
    *,
    version_dir: Path | None = None,
) -> list[str]:
    """Why ``candidate`` should not replace ``current`` as latest (empty: it may). With
    ``version_dir``, also whether the model loads."""
    problems: list[str] = []
    try:
        check_metadata(candidate.metadata)
    except ModelMismatchError as exc:
        problems.append(f"feature mismatch: {exc} (code: {FEATURE_VERSION!r})")
    else:
        if version_dir is not None and (error := _load_error(version_dir)) is not None:
            problems.append(f"the model does not load: {error}")
    parity = candidate.parity_max_abs_diff
    if parity is None:
        problems.append("ONNX parity check missing: no ONNX-vs-LightGBM figure in its metadata")
    elif not parity <= PARITY_TOLERANCE:
        problems.append(
            f"ONNX parity check failed: max |ONNX - LightGBM| = {parity:.3g} > {PARITY_TOLERANCE}"
        )
    if candidate.ndcg_at_10 is None:
        problems.append("no test NDCG@10 (trained with --no-eval?): run `nowplaying evaluate`")
    elif current is not None and current.ndcg_at_10 is not None:
        drop = current.ndcg_at_10 - candidate.ndcg_at_10
        if drop > ndcg_tolerance:
            problems.append(
                f"test NDCG@10 {candidate.ndcg_at_10:.4f} is {drop:.4f} below the latest "
                f"{current.name}'s {current.ndcg_at_10:.4f} (tolerance {ndcg_tolerance})"
            )
    return problems


def gate_notes(candidate: VersionInfo, current: VersionInfo | None) -> list[str]:
    """Things worth knowing that do not block a promotion."""
    notes = []
    if current is not None and candidate.test_split != current.test_split:
        notes.append(
            "the two versions were evaluated on different test splits (other data or split "
            "seed): their NDCG@10 figures are not strictly comparable"
        )
    if current is not None and current.ndcg_at_10 is None:
        notes.append(f"the latest {current.name} has no test NDCG@10 to compare with")
    return notes


@dataclass(frozen=True, slots=True)
class RegistryActionResult:
    """What a promote or a rollback did: ``ok`` (``latest`` names the wanted version), what to
    tell the operator, and the gate's problems and notes (promote only)."""

    ok: bool
    message: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def promote(
    model_dir: Path,
    version: str,
    *,
    force: bool = False,
    ndcg_tolerance: float = NDCG_TOLERANCE,
) -> RegistryActionResult:
    """Point ``latest`` at ``version`` if it passes the gate (or ``force``); records the
    previous latest in the history."""
    try:
        version_dir = resolve_version_dir(model_dir, version)
    except ModelNotFoundError as exc:
        return RegistryActionResult(False, str(exc))
    if version_dir.resolve().parent != model_dir.resolve():
        return RegistryActionResult(False, f"{version!r} is not a version folder of {model_dir}")
    candidate = VersionInfo.read(version_dir)
    with registry_lock(model_dir):
        previous = latest_version(model_dir)
        if previous == version_dir.name:
            return RegistryActionResult(True, f"{version} is already the latest")
        current = _info_or_none(model_dir, previous)
        problems = tuple(gate_problems(candidate, current, ndcg_tolerance, version_dir=version_dir))
        notes = tuple(gate_notes(candidate, current))
        if problems and not force:
            return RegistryActionResult(False, f"refused to promote {version}", problems, notes)
        publish_version(model_dir, version_dir)
    forced = " (forced past the gate)" if problems else ""
    return RegistryActionResult(
        True, f"latest: {previous or '(none)'} -> {version}{forced}", problems, notes
    )


def rollback(model_dir: Path) -> RegistryActionResult:
    """Point ``latest`` back at the version it named before the last promotion."""
    with registry_lock(model_dir):
        history = read_history(model_dir)
        current = latest_version(model_dir)
        while history:
            target = history.pop()
            try:
                version_dir = resolve_version_dir(model_dir, target)
            except ModelNotFoundError as exc:
                write_history(model_dir, history)
                return RegistryActionResult(False, f"cannot roll back to {target}: {exc}")
            write_history(model_dir, history)
            if target == current:
                continue  # nothing to go back to in this entry
            publish_version(model_dir, version_dir, record_history=False)
            return RegistryActionResult(
                True, f"latest: {current or '(none)'} -> {target} (rolled back)"
            )
    return RegistryActionResult(False, "no previous latest in the history: nothing to roll back to")


def _info_or_none(model_dir: Path, version: str | None) -> VersionInfo | None:
    if version is None:
        return None
    try:
        return VersionInfo.read(resolve_version_dir(model_dir, version))
    except (ModelNotFoundError, OSError, ValueError):
        return None


def _load_error(version_dir: Path) -> str | None:
    try:
        Recommender.load(version_dir)
    except Exception as exc:  # any load failure refuses the version
        return f"{type(exc).__name__}: {exc}"
    return None


# --- listing --------------------------------------------------------------------------------


def version_table(model_dir: Path) -> str:
    """The versions, oldest first, with the figures the gate uses; ``*`` marks the latest."""
    latest = latest_version(model_dir)
    header = (
        f"  {'version':<24} {'created_at':<20} {'features':>8} {'NDCG@10':>8} "
        f"{'baseline':>8} {'parity':>8}"
    )
    rows = [header]
    for name in list_versions(model_dir):
        try:
            info = VersionInfo.read(model_dir / name)
        except (OSError, ValueError) as exc:
            rows.append(f"  {name:<24} unreadable metadata: {exc}")
            continue
        mark = "*" if name == latest else " "
        rows.append(
            f"{mark} {name:<24} {info.created_at[:19]:<20} {info.feature_version:>8} "
            f"{_fmt(info.ndcg_at_10, '.4f'):>8} {_fmt(info.best_baseline_ndcg, '.4f'):>8} "
            f"{_fmt(info.parity_max_abs_diff, '.1e'):>8}"
        )
    return "\n".join(rows)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# --- command --------------------------------------------------------------------------------


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying models list | promote VERSION [--force] | rollback``."""
    model_dir: Path = args.model_dir or settings.model_dir
    if args.action == "list":
        if not list_versions(model_dir):
            print(f"no model versions in {model_dir}: run `nowplaying train`", file=sys.stderr)
            return 1
        print(version_table(model_dir))
        print(f"(* latest; registry {model_dir}; code feature version {FEATURE_VERSION})")
        return 0
    if args.action == "promote":
        result = promote(model_dir, args.version, force=args.force, ndcg_tolerance=args.tolerance)
    else:
        result = rollback(model_dir)
    _print_result(result)
    return 0 if result.ok else 1


def _print_result(result: RegistryActionResult) -> None:
    stream = sys.stdout if result.ok else sys.stderr
    print(result.message, file=stream)
    for problem in result.problems:
        print(f"  - {problem}", file=stream)
    for note in result.notes:
        print(f"  note: {note}", file=stream)
    if not result.ok and result.problems:
        print("  (use --force to promote anyway)", file=stream)
