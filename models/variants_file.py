"""The registry's ``variants`` file: the A/B test a running worker serves, changeable live.

``NP_MODEL_VARIANTS`` and ``NP_EXPERIMENT_SALT`` say what a worker serves when it starts. A
``variants`` file in the registry folder (JSON ``{"spec": ..., "salt": ...}``, written atomically
by ``nowplaying models variants set|clear``) overrides both while it exists: the workers'
registry watch (:mod:`streams.reload`) picks a change up within ``NP_MODEL_RELOAD_SECONDS``.
An empty spec in the file ends the test (one model, ``latest``, for everyone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from models.experiments import ExperimentError, parse_variants
from nowplaying.settings import Settings

VARIANTS_FILE: Final = "variants"


@dataclass(frozen=True, slots=True)
class VariantsSpec:
    """An A/B test spec (``name=version:weight,...``; empty: no test) and its salt."""

    spec: str
    salt: str


def read_variants_file(model_dir: Path) -> VariantsSpec | None:
    """The file's spec, or None when there is no file. Raises :class:`ExperimentError` when it
    is not a valid spec."""
    try:
        text = (model_dir / VARIANTS_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        found = VariantsSpec(str(data["spec"]), str(data["salt"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExperimentError(f"{model_dir / VARIANTS_FILE} is not valid: {exc}") from None
    parse_variants(found.spec)
    return found


def write_variants_file(model_dir: Path, spec: VariantsSpec) -> None:
    """Write the file atomically (after checking the spec)."""
    parse_variants(spec.spec)
    path = model_dir / VARIANTS_FILE
    tmp = path.with_name(f".{VARIANTS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"spec": spec.spec, "salt": spec.salt}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def clear_variants_file(model_dir: Path) -> bool:
    """Remove the file (the workers go back to their settings); False when there was none."""
    try:
        (model_dir / VARIANTS_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying models variants SPEC [--salt S] | --clear``."""
    model_dir: Path = args.model_dir or settings.model_dir
    if args.clear:
        cleared = clear_variants_file(model_dir)
        print("variants file removed: workers serve their settings" if cleared else "no file")
        return 0
    if args.spec is None:
        current = read_variants_file(model_dir)
        print("no variants file" if current is None else f"{current.spec} (salt {current.salt})")
        return 0
    spec = VariantsSpec(args.spec, args.salt or settings.experiment_salt)
    try:
        write_variants_file(model_dir, spec)
    except ExperimentError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(f"workers will serve {spec.spec or 'one model'} (salt {spec.salt})")
    return 0
