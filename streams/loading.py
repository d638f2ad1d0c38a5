"""The worker's models, loaded once at start-up: one model, or every variant of an A/B test.

A/B test (``NP_MODEL_VARIANTS``, :mod:`models.experiments`): every variant's model is loaded
once at start-up (a bad spec or a missing version stops the worker before it consumes anything);
each listener's lists come from the model of the listener's variant, and the first variant's
model stands for the worker's ``model_version``. The ``nowplaying_model`` info metric is set
here from what was loaded (and again by :mod:`streams.reload` after each swap).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from models.experiments import Experiment, experiment_from, load_variant_recommenders
from models.recommender import Recommender
from models.registry import resolve_version_dir
from models.variants_file import read_variants_file
from nowplaying import metrics
from nowplaying.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ABTest:
    """The A/B test of ``NP_MODEL_VARIANTS`` and each variant's loaded model, by name."""

    experiment: Experiment
    recommenders: dict[str, Recommender]

    @property
    def versions(self) -> dict[str, str]:
        """Each variant's model version, by variant name."""
        return {name: r.model_version for name, r in self.recommenders.items()}


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """What the worker ranks with: ``recommender`` (during an A/B test, the first variant's),
    loaded from ``path``."""

    recommender: Recommender
    path: Path
    ab_test: ABTest | None = None


def load_models(settings: Settings) -> LoadedModels:
    """The single model, or the A/B test's variants; sets the model-info metric. Raises
    :class:`models.experiments.ExperimentError` on a bad spec, or the loader's error on a model
    that does not load."""
    found = read_variants_file(settings.model_dir)  # the registry's live A/B test wins
    if found is not None:
        settings = settings.model_copy(
            update={"model_variants": found.spec, "experiment_salt": found.salt}
        )
    experiment = experiment_from(settings.model_variants, settings.experiment_salt)
    if experiment is None:
        version_dir = resolve_version_dir(settings.model_dir, settings.model_version)
        recommender = Recommender.served(version_dir, settings)
        models = LoadedModels(recommender, version_dir)
    else:
        models = _load_ab_test(settings, experiment)
    set_model_info(models, settings.experiment_salt)
    return models


def _load_ab_test(settings: Settings, experiment: Experiment) -> LoadedModels:
    recommenders = load_variant_recommenders(
        experiment,
        settings.model_dir,
        intra_op_threads=settings.ort_intra_op_threads,
        candidates=settings.candidates,
    )
    if settings.model_version:
        log.warning("NP_MODEL_VARIANTS is set: NP_MODEL_VERSION is ignored")
    for v in experiment.variants:
        log.info(
            "A/B variant %s: model %s, weight %d/%d",
            v.name,
            recommenders[v.name].model_version,
            v.weight,
            experiment.total_weight,
        )
    first = recommenders[experiment.variants[0].name]
    return LoadedModels(
        first, settings.model_dir / first.model_version, ABTest(experiment, recommenders)
    )


def set_model_info(models: LoadedModels, experiment_salt: str) -> None:
    info = {
        "version": models.recommender.model_version,
        "feature_version": str(models.recommender.feature_version),
        "path": str(models.path),
    }
    ab = models.ab_test
    if ab is not None:
        info["variants"] = ",".join(
            f"{v.name}={ab.recommenders[v.name].model_version}:{v.weight}"
            for v in ab.experiment.variants
        )
        info["experiment_salt"] = experiment_salt
    metrics.MODEL_INFO.info(info)
