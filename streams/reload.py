"""Hot model reload: a running worker follows the registry's ``latest`` pointer and ``variants``.

Every ``NP_MODEL_RELOAD_SECONDS`` (and before it claims partitions on an assignment) the worker
reads what the registry says it should serve: the ``variants`` file's A/B test if there is one
(:mod:`models.variants_file`), else ``NP_MODEL_VARIANTS``, else ``NP_MODEL_VERSION`` or
``latest``; each ``latest`` resolved through the pointer. When that differs from what it serves,
the versions not loaded yet are loaded and checked in a thread, off the event loop
(:func:`models.version_check.load_checked`: the feature version and names, the ONNX input width,
the stored parity rows); only when every one passes is the new :class:`ModelSnapshot` swapped
in, by one reference assignment between batches (a batch takes its snapshot once, so a batch in
flight finishes on the models it started with). A refused target is logged and counted
(``nowplaying_model_reloads_total{result}``), the old models keep serving, and the same target
is not tried again until the registry changes. Why a watched pointer and not a control topic:
docs/models.md "Hot reload".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from features.store import Claim, TopicPartition
from models.experiments import Experiment, Variant, experiment_from
from models.recommender import Recommender
from models.registry import LATEST, latest_version
from models.variants_file import read_variants_file
from models.version_check import VersionRefusedError, load_checked
from nowplaying import metrics
from nowplaying.settings import Settings
from streams.loading import ABTest, LoadedModels, set_model_info
from streams.ownership import Claimer
from streams.ranking import ModelSnapshot, Ranker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """What the registry says to serve: each variant's resolved version and weight (one
    ``(None, version, 0)`` outside an A/B test), and the salt."""

    variants: tuple[tuple[str | None, str, int], ...]
    salt: str

    @property
    def versions(self) -> set[str]:
        return {v for _, v, _ in self.variants}

    def describe(self) -> str:
        if self.variants[0][0] is None:
            return f"version {self.variants[0][1]}"
        shares = ",".join(f"{n}={v}:{w}" for n, v, w in self.variants)
        return f"A/B test {shares} (salt {self.salt})"


def target_of(settings: Settings, model_dir: Path) -> Target:
    """Read the registry now. Raises :class:`ExperimentError` (a bad spec) or
    :class:`VersionRefusedError` (no ``latest``)."""
    found = read_variants_file(model_dir)
    spec, salt = (found.spec, found.salt) if found else (settings.model_variants, "")
    salt = salt or settings.experiment_salt
    experiment = experiment_from(spec, salt)
    if experiment is None:
        version = None if found else settings.model_version
        return Target(((None, version or _latest(model_dir), 0),), "")
    return Target(
        tuple(
            (v.name, _latest(model_dir) if v.version == LATEST else v.version, v.weight)
            for v in experiment.variants
        ),
        salt,
    )


def _latest(model_dir: Path) -> str:
    version = latest_version(model_dir)
    if version is None:
        raise VersionRefusedError("not_found", f"no '{LATEST}' pointer in {model_dir}")
    return version


def target_of_loaded(models: LoadedModels) -> Target:
    """The target the worker's start-up models serve."""
    ab = models.ab_test
    if ab is None:
        return Target(((None, models.recommender.model_version, 0),), "")
    return Target(
        tuple((v.name, ab.versions[v.name], v.weight) for v in ab.experiment.variants),
        ab.experiment.salt,
    )


def snapshot_of(
    models: LoadedModels, wrap: Callable[[Recommender], Ranker] = lambda r: r
) -> ModelSnapshot:
    """What a batch ranks with; ``wrap`` turns each loaded model into the ranker the worker
    calls (the worker steers every model: :func:`streams.steering.steered`)."""
    ab = models.ab_test
    if ab is None:
        return ModelSnapshot({None: wrap(models.recommender)})
    rankers: dict[str | None, Ranker] = {n: wrap(r) for n, r in ab.recommenders.items()}
    return ModelSnapshot(rankers, ab.experiment)


class ModelWatcher:
    """Serves the current :class:`ModelSnapshot` and swaps it when the registry changes."""

    #: Loads and checks one version (in a thread); tests inject their own.
    Loader = Callable[[str], Recommender]

    def __init__(
        self,
        settings: Settings,
        models: LoadedModels,
        *,
        loader: Callable[[str], Recommender] | None = None,
        wrap: Callable[[Recommender], Ranker] = lambda r: r,
    ) -> None:
        self._settings = settings
        self._models = models
        self._wrap = wrap
        self._snapshot = snapshot_of(models, wrap)
        self._serving = target_of_loaded(models)
        self._refused: Target | str | None = None
        self._lock = asyncio.Lock()
        self._loader = loader or self._load
        self.swaps = 0

    @property
    def models(self) -> LoadedModels:
        """What is served now (readiness, the model-info metric)."""
        return self._models

    def snapshot(self) -> ModelSnapshot:
        return self._snapshot

    def _load(self, version: str) -> Recommender:
        s = self._settings
        recommender, checked = load_checked(
            s.model_dir,
            version,
            intra_op_threads=s.ort_intra_op_threads,
            candidates=s.candidates,
        )
        log.info("model %s loaded and checked: %s", version, checked)
        return recommender

    async def refresh(self) -> bool:
        """Read the registry; load, check and swap in what it names if that is new. Returns
        whether a swap happened. Never raises: a refusal is logged and counted."""
        async with self._lock:
            try:
                target = target_of(self._settings, self._settings.model_dir)
            except VersionRefusedError as exc:  # no 'latest' pointer
                return self._refuse(exc.reason, exc.kind, exc.reason)
            except Exception as exc:  # a bad spec, an unreadable file: never fail the caller
                return self._refuse(str(exc), "invalid_spec", f"{type(exc).__name__}: {exc}")
            if target == self._serving:
                self._refused = None  # a refused target named again later is tried again
                return False
            if target == self._refused:
                return False
            loaded = self._loaded_by_version()
            todo = sorted(target.versions - set(loaded))
            loop = asyncio.get_running_loop()
            for version in todo:
                try:
                    loaded[version] = await loop.run_in_executor(None, self._loader, version)
                except VersionRefusedError as exc:
                    return self._refuse(target, exc.kind, f"version {version}: {exc.reason}")
                except Exception as exc:  # any other load failure refuses the target too
                    return self._refuse(target, "load_failed", f"version {version}: {exc}")
            self._swap(target, loaded)
            return True

    def _loaded_by_version(self) -> dict[str, Recommender]:
        ab = self._models.ab_test
        found = [self._models.recommender, *(ab.recommenders.values() if ab else ())]
        return {r.model_version: r for r in found}

    def _refuse(self, target: Target | str, kind: str, reason: str) -> bool:
        """Log and count a refused target (or a registry that cannot be read: its error) once;
        it is not tried again until the registry says something else."""
        if target != self._refused:
            log.error("model reload refused (%s): %s; still serving %s", kind, reason, self._what())
            metrics.MODEL_RELOADS.labels(kind).inc()
        self._refused = target
        return False

    def _what(self) -> str:
        return self._serving.describe()

    def _swap(self, target: Target, loaded: dict[str, Recommender]) -> None:
        first = loaded[target.variants[0][1]]
        path = self._settings.model_dir / first.model_version
        if target.variants[0][0] is None:
            models = LoadedModels(first, path)
        else:
            experiment = Experiment(
                tuple(Variant(str(n), v, w) for n, v, w in target.variants), target.salt
            )
            recommenders = {str(n): loaded[v] for n, v, _ in target.variants}
            models = LoadedModels(first, path, ABTest(experiment, recommenders))
        before = self._what()
        self._models, self._snapshot = models, snapshot_of(models, self._wrap)
        self._serving, self._refused = target, None
        self.swaps += 1
        set_model_info(models, target.salt)
        metrics.MODEL_RELOADS.labels("swapped").inc()
        log.info("model reload: now serving %s (was %s)", target.describe(), before)

    async def watch(self, interval_seconds: float) -> None:
        """Refresh every ``interval_seconds``, until cancelled."""
        while True:
            await asyncio.sleep(interval_seconds)
            await self.refresh()


class RefreshingClaimer:
    """The store's partition claims, each after a registry refresh: a worker taking a partition
    over serves what the registry names at that moment, never less recent than what the
    partition's previous owner served (so a partition's lists never switch back)."""

    def __init__(self, store: Claimer, watcher: ModelWatcher) -> None:
        self._store = store
        self._watcher = watcher

    async def claim_partitions(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Claim]:
        await self._watcher.refresh()
        return await self._store.claim_partitions(partitions)
