"""A/B tests of model versions: the variants spec, stable user assignment, loading the variants.

``NP_MODEL_VARIANTS`` lists the variants as ``name=version:weight`` items separated by commas,
e.g. ``control=20261128T214525Z-b87b58:90,treatment=20261129T080000Z-1c2d3e:10``. ``version``
is a version folder of the registry or ``latest`` (what the ``latest`` pointer names when the
worker starts). An empty spec means no experiment: the single model of ``NP_MODEL_VERSION`` (or
``latest``) serves everyone.

A user is assigned by a stable hash of ``NP_EXPERIMENT_SALT`` and the user id: the same user gets
the same variant on every worker, after every restart and for every redelivery, and a new salt
reshuffles everyone (a new experiment). The share of users in a variant is its weight over the
sum of the weights.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from models.recommender import Recommender
from models.registry import LATEST, ModelNotFoundError, resolve_version_dir

#: Variant names: short, lower case, usable as a Prometheus label value and in messages.
NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
#: Version folder names (or ``latest``).
VERSION_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_WEIGHT: Final = 10_000


class ExperimentError(ValueError):
    """The variants spec is malformed, or names a version that does not exist or load."""


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    version: str  # a version folder name, or "latest"
    weight: int


@dataclass(frozen=True, slots=True)
class Experiment:
    """Variants and the salt; :meth:`assign` maps a user id to a variant, deterministically."""

    variants: tuple[Variant, ...]
    salt: str

    def __post_init__(self) -> None:
        if not self.variants:
            raise ExperimentError("an experiment needs at least one variant")

    @property
    def total_weight(self) -> int:
        return sum(v.weight for v in self.variants)

    def assign(self, user_id: str) -> str:
        """The name of ``user_id``'s variant."""
        point = user_bucket(user_id, self.salt) % self.total_weight
        for variant in self.variants:
            if point < variant.weight:
                return variant.name
            point -= variant.weight
        raise AssertionError("unreachable: point < total weight")  # pragma: no cover


def user_bucket(user_id: str, salt: str) -> int:
    """A 64-bit hash of salt and user id (blake2b: the same on every machine and Python run)."""
    digest = hashlib.blake2b(f"{salt}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def parse_variants(spec: str) -> tuple[Variant, ...]:
    """Parse ``name=version:weight,...``; empty (or blank) gives no variants. Raises
    :class:`ExperimentError` naming the first problem."""
    items = [item.strip() for item in spec.split(",")] if spec.strip() else []
    variants = tuple(_parse_item(item) for item in items)
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ExperimentError(f"variant names must be unique: {', '.join(duplicates)} repeated")
    return variants


def _parse_item(item: str) -> Variant:
    name, eq, rest = item.partition("=")
    version, colon, weight_text = rest.rpartition(":")
    if not eq or not colon:
        raise ExperimentError(f"variant {item!r}: expected name=version:weight")
    name, version, weight_text = name.strip(), version.strip(), weight_text.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise ExperimentError(
            f"variant {item!r}: name {name!r} must match {NAME_PATTERN.pattern} "
            "(lower case letter first, then letters, digits, '_' or '-')"
        )
    if not VERSION_PATTERN.fullmatch(version):
        raise ExperimentError(f"variant {name!r}: {version!r} is not a model version name")
    try:
        weight = int(weight_text)
    except ValueError:
        raise ExperimentError(
            f"variant {name!r}: weight {weight_text!r} is not an integer"
        ) from None
    if not 0 < weight <= MAX_WEIGHT:
        raise ExperimentError(f"variant {name!r}: weight {weight} must be in 1..{MAX_WEIGHT}")
    return Variant(name, version, weight)


def experiment_from(spec: str, salt: str) -> Experiment | None:
    """The experiment of a settings spec, or None when the spec is empty."""
    variants = parse_variants(spec)
    return Experiment(variants, salt) if variants else None


def resolve_variant_dir(model_dir: Path, variant: Variant) -> Path:
    """The version folder a variant names (``latest``: the pointer's version, now)."""
    version = None if variant.version == LATEST else variant.version
    try:
        return resolve_version_dir(model_dir, version)
    except ModelNotFoundError as exc:
        raise ExperimentError(f"variant {variant.name!r}: {exc}") from None


def load_variant_recommenders(
    experiment: Experiment,
    model_dir: Path,
    *,
    intra_op_threads: int = 1,
    candidates: int = 200,
) -> dict[str, Recommender]:
    """Each variant's recommender, by variant name; variants naming the same version share
    one. Raises :class:`ExperimentError` when a version is missing or does not load."""
    loaded: dict[Path, Recommender] = {}
    out: dict[str, Recommender] = {}
    for variant in experiment.variants:
        version_dir = resolve_variant_dir(model_dir, variant).resolve()
        if version_dir not in loaded:
            try:
                loaded[version_dir] = Recommender.load(
                    version_dir, intra_op_threads=intra_op_threads, candidates=candidates
                )
            except Exception as exc:  # any load failure (ONNX runtime errors included)
                raise ExperimentError(
                    f"variant {variant.name!r}: model {version_dir.name} does not load: {exc}"
                ) from None
        out[variant.name] = loaded[version_dir]
    return out
