"""Training: track artifacts, LambdaRank on point-in-time queries, ONNX export, registry.

:func:`train_model` (which ``nowplaying train``, :mod:`models.train_cli`, runs; tests and fixtures
call it for a real small model) does, on a fixed seeded 80/10/10 session split:

1. **Training rows, out of fold.** The training sessions are cut into ``folds`` parts; the rows
   of each part's queries are built with artifacts fitted on the OTHER parts. Otherwise every
   training positive would see its own transition in the co-listen counts, and the ranker would
   learn to trust counts far more than they deserve on unseen sessions. At most
   ``queries_per_session`` queries per session are kept (sampled); each keeps the actual next
   track (graded label) and ``negatives`` sampled generator candidates.
2. **Artifacts** for serving are fitted on all training sessions (never validation or test).
3. **LGBMRanker(objective="lambdarank")**, early-stopped on the validation split's NDCG@10
   (validation rows: all candidates, features from the serving artifacts).
4. **ONNX export** (:mod:`models.export`) and the evaluation of the test split through the
   exported graph (:mod:`models.evaluate`), with the ONNX-vs-LightGBM parity on every scored row,
   and of the served lists against the full-catalogue baselines, fitted on the training split
   (:mod:`models.served_evaluation`).
5. The version folder (``model.onnx``, ``metadata.json``, artifacts, report) is renamed into the
   registry and ``latest`` is pointed at it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from tqdm import tqdm

from features.artifacts import F32, TrackArtifacts, fit_artifacts
from features.rows import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES
from models.ablation import ablation_table
from models.datasets import DataError
from models.evaluate import Evaluation, evaluate_sessions, write_report
from models.export import INPUT_NAME, TARGET_OPSET, export_onnx, onnx_session
from models.labelled_sessions import Session, fingerprint, split_sessions
from models.ranking_queries import RankingData, training_data
from models.recommender import SEQUENCE_FILE, Recommender, SequenceScores, load_sequence
from models.registry import (
    LIGHTGBM_FILE,
    METADATA_FILE,
    MODEL_FILE,
    publish_version,
)
from models.served_evaluation import evaluate_served
from models.skip.train import add_skip_model
from models.train_sequence import SequenceModels, train_sequence_models
from models.training_rows import (
    out_of_fold_rows,
    queries_of,
    sequence_config,
    serving_scores,
)
from models.version_check import save_parity_sample


@dataclass(frozen=True)
class TrainConfig:
    trees: int = 200
    leaves: int = 31
    learning_rate: float = 0.08
    objective: str = "lambdarank"  # or "rank_xendcg"
    min_child_samples: int = 50
    negatives: int = 20  # generator candidates per training query (besides the positive) ...
    #: ... of which the generator's first ones (the rest sampled). 0: all sampled. Measured on
    #: the real data, 10 of 20 LOST 0.06 served HR@10 (validation stopped at 52 trees): the
    #: ranker then meets few easy negatives, and serving ranks all NP_CANDIDATES candidates.
    hard_negatives: int = 0
    negative_pool: int | None = None  # sample the negatives from the generator's first ones
    #: Every actual next track a positive (models.ranking_queries.LABEL: early skips too);
    #: False: the graded gain, early-skipped next tracks left out.
    every_next: bool = True
    #: LambdaRank gain of each label (0 for the other candidates).
    label_gain: tuple[float, ...] = (0.0, 1.0, 3.0, 7.0)
    queries_per_session: int | None = 10  # sampled training queries per session (None: all)
    candidates: int = 200  # generator candidates of the training and validation queries
    served_candidates: int = 100  # of the evaluated served lists: NP_CANDIDATES (its default)
    folds: int = 4  # out-of-fold artifacts for the training rows (1: no folds)
    early_stopping_rounds: int = 30
    validation_queries: int = 1000  # cap on the early-stopping queries (all candidates each)
    parity_rows: int = 200_000  # test rows also scored by LightGBM for the ONNX parity figure
    seed: int = 7
    #: Train the sequence model (models.train_sequence) and feed its scores to the ranker.
    sequence: bool = True
    #: Epochs of the sequence models (None: SequenceConfig's); 2 keeps the three trainings of
    #: `nowplaying train` within its time budget on a shared 2-core machine.
    sequence_epochs: int | None = 2
    sequence_learning_rate: float | None = None  # None: SequenceConfig's
    #: Also train the ranker without the sequence-model and without the higher-order features
    #: (the same rows, those columns zeroed) and evaluate their served lists (models.ablation).
    ablation: bool = False
    #: LightGBM threads. One by default: on a shared 2-core machine OpenMP threads spin against
    #: the other processes (measured: 2 threads took 2.1x the wall time and 2.7x the CPU of 1).
    threads: int = 1
    workers: int = 0  # processes building the training folds; 0: one per core
    skip_model: bool = True  # also train the skip-risk model (models.skip) into the version
    skip_task_model: bool = False  # and the offline WSDM evaluation model (models.skip.task_model)


@dataclass
class _Timer:
    timings: dict[str, float]

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 3)


def train_model(
    sessions: Sequence[Session],
    model_dir: Path,
    *,
    config: TrainConfig | None = None,
    data_info: dict[str, Any] | None = None,
    progress: bool = False,
    evaluate: bool = True,
    publish: bool = True,
) -> Path:
    """Train, export and register a model version; returns the version folder.

    ``model_dir`` is the registry folder (created if needed). ``data_info`` is stored under
    ``metadata["data"]`` (e.g. ``description``, ``kind``, ``path``, ``limit``), so that
    ``nowplaying evaluate`` can find the same data again.
    """
    cfg = config or TrainConfig()
    started = time.perf_counter()
    timer = _Timer({})
    train = split_sessions(sessions, seed=cfg.seed)[0]
    if not train:
        raise DataError("no training sessions")
    with timer("artifacts"):
        artifacts = fit_artifacts(train, seed=cfg.seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    scratch = model_dir / f".scratch-{os.getpid()}-{time.time_ns()}"
    scratch.mkdir()
    try:
        return _train_in(
            sessions,
            model_dir,
            scratch=scratch,
            artifacts=artifacts,
            cfg=cfg,
            timer=timer,
            started=started,
            data_info=data_info,
            progress=progress,
            evaluate=evaluate,
            publish=publish,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train_in(
    sessions: Sequence[Session],
    model_dir: Path,
    *,
    scratch: Path,
    artifacts: TrackArtifacts,
    cfg: TrainConfig,
    timer: _Timer,
    started: float,
    data_info: dict[str, Any] | None,
    progress: bool,
    evaluate: bool,
    publish: bool,
) -> Path:
    train, val, test = split_sessions(sessions, seed=cfg.seed)
    sequence: SequenceModels | None = None
    serving_sequence: SequenceScores | None = None
    if cfg.sequence:
        with timer("sequence_models"):
            sequence = train_sequence_models(
                train, artifacts, scratch, scratch, seed=cfg.seed, config=sequence_config(cfg)
            )
        serving_sequence = load_sequence(scratch)
    with timer("training_rows"):
        train_rows = out_of_fold_rows(train, cfg, progress, sequence, artifacts)
    with timer("validation_rows"):
        val_rows = training_data(
            queries_of(val, progress, "validation queries"),
            artifacts,
            negatives=None,
            candidates=cfg.candidates,
            seed=cfg.seed,
            max_queries=cfg.validation_queries,
            sequence=serving_scores(serving_sequence, artifacts),
            every_next=cfg.every_next,
        )
    if train_rows.n_queries == 0:
        raise DataError("no training queries with a positive next track")
    with timer("lightgbm"):
        booster = fit_ranker(train_rows, val_rows, cfg, progress)
    created = datetime.now(UTC)
    train_fp = fingerprint(train)
    version = _version_name(created, train_fp, cfg)
    building = model_dir / f".building-{version}-{os.getpid()}"
    building.mkdir()
    try:
        with timer("onnx_export"):
            artifacts.save(building)
            opsets = export_onnx(booster, N_FEATURES, building / MODEL_FILE)
            booster.save_model(str(building / LIGHTGBM_FILE))
            save_parity_sample(
                building, booster, val_rows.rows if len(val_rows.rows) else train_rows.rows
            )
            if sequence is not None:
                shutil.copyfile(sequence.serving, building / SEQUENCE_FILE)
        if cfg.skip_model:
            with timer("skip_model"):
                add_skip_model(
                    building,
                    (train, val, test),
                    artifacts,
                    seed=cfg.seed,
                    threads=cfg.threads,
                    folds=cfg.folds,
                    evaluate=evaluate,
                    task_model=cfg.skip_task_model,
                )
        metadata: dict[str, Any] = {
            "version": version,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "feature_version": FEATURE_VERSION,
            "feature_names": list(FEATURE_NAMES),
            "model": {
                "type": "lightgbm.LGBMRanker",
                "objective": cfg.objective,
                "best_iteration": booster.current_iteration(),
                "lightgbm_version": lgb.__version__,
            },
            "onnx": {"input": INPUT_NAME, "target_opset": TARGET_OPSET, "opsets": opsets},
            "params": asdict(cfg),
            "data": {
                "description": f"{len(sessions)} sessions, "
                f"{sum(len(s.plays) for s in sessions)} plays (source not described)",
                **(data_info or {}),
                "split_seed": cfg.seed,
                "fingerprint": fingerprint(sessions),
                "train_fingerprint": train_fp,
                "sessions": {"train": len(train), "validation": len(val), "test": len(test)},
            },
            "training": {
                "queries": train_rows.n_queries,
                "rows": len(train_rows.rows),
                "validation_queries": val_rows.n_queries,
                "validation_rows": len(val_rows.rows),
            },
            "artifacts": {**artifacts.params, "tracks": artifacts.n_tracks},
            "sequence": None
            if sequence is None
            else {"file": SEQUENCE_FILE, "half_seed": sequence.half_seed, **sequence.stats},
            "metrics": {},
            "timings_seconds": timer.timings,
        }
        _write_metadata(building, metadata)
        if evaluate and test:
            with timer("evaluation"):
                evaluation = _evaluate(building, booster, cfg, progress, train=train, test=test)
            if cfg.ablation:
                with timer("ablation"):
                    assert evaluation.served is not None
                    evaluation.served["ablation"] = ablation_table(
                        building,
                        evaluation.served,
                        train_rows=train_rows,
                        val_rows=val_rows,
                        cfg=cfg,
                        train=train,
                        test=test,
                    )
            metadata["metrics"] = evaluation.to_json()
            write_report(
                building,
                evaluation,
                {"version": version, "data": metadata["data"]["description"]},
            )
        metadata["timings_seconds"]["total"] = round(time.perf_counter() - started, 3)
        _write_metadata(building, metadata)
        version_dir = model_dir / version
        building.rename(version_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if publish:
        publish_version(model_dir, version_dir)
    return version_dir


def make_ranker(cfg: TrainConfig) -> lgb.LGBMRanker:
    return lgb.LGBMRanker(
        objective=cfg.objective,
        n_estimators=cfg.trees,
        num_leaves=cfg.leaves,
        learning_rate=cfg.learning_rate,
        min_child_samples=cfg.min_child_samples,
        colsample_bytree=0.9,
        subsample=0.8,
        subsample_freq=1,
        n_jobs=cfg.threads,
        random_state=cfg.seed,
        label_gain=list(cfg.label_gain),
        lambdarank_truncation_level=20,
        deterministic=True,
        force_row_wise=True,
        verbosity=-1,
    )


def fit_ranker(
    train: RankingData, val: RankingData, cfg: TrainConfig, progress: bool
) -> lgb.Booster:
    """Fit ``LGBMRanker(objective="lambdarank")``, early-stopped on the validation NDCG@10;
    returns its booster trimmed to the best iteration."""
    ranker = make_ranker(cfg)
    bar = tqdm(total=cfg.trees, desc="lightgbm", unit="tree", disable=not progress, leave=False)
    callbacks: list[Callable[..., None]] = [lambda env: bar.update(1)]
    eval_args: dict[str, Any] = {}
    if val.n_queries and cfg.early_stopping_rounds > 0:
        callbacks.append(lgb.early_stopping(cfg.early_stopping_rounds, verbose=False))
        eval_args = {
            "eval_X": (val.rows,),
            "eval_y": (val.labels,),
            "eval_group": [val.groups],
            "eval_at": [10],
            "eval_names": ["validation"],
        }
    try:
        ranker.fit(
            train.rows,
            train.labels,
            group=train.groups,
            feature_name=list(FEATURE_NAMES),
            callbacks=callbacks,
            **eval_args,
        )
    finally:
        bar.close()
    booster = ranker.booster_
    best = ranker.best_iteration_ or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def _evaluate(
    version_dir: Path,
    booster: lgb.Booster,
    cfg: TrainConfig,
    progress: bool,
    *,
    train: Sequence[Session],
    test: Sequence[Session],
) -> Evaluation:
    metadata = json.loads((version_dir / METADATA_FILE).read_text(encoding="utf-8"))
    recommender = Recommender(
        onnx_session(version_dir / MODEL_FILE, intra_op_threads=1),
        TrackArtifacts.load(version_dir),
        metadata,
        candidates=cfg.served_candidates,
        sequence=load_sequence(version_dir),
    )

    def reference(rows: F32) -> np.ndarray:
        return np.asarray(booster.predict(rows, num_threads=1))

    evaluation = evaluate_sessions(
        recommender,
        test,
        reference=reference,
        reference_rows=cfg.parity_rows,
        progress=progress,
    )
    evaluation.served = evaluate_served(recommender, train, test, progress=progress).to_json()
    return evaluation


def _version_name(created: datetime, train_fp: str, cfg: TrainConfig) -> str:
    digest = hashlib.sha1(
        (train_fp + json.dumps(asdict(cfg), sort_keys=True) + created.isoformat()).encode()
    ).hexdigest()
    return f"{created:%Y%m%dT%H%M%SZ}-{digest[:6]}"


def _write_metadata(folder: Path, metadata: dict[str, Any]) -> None:
    text = json.dumps(metadata, indent=2) + "\n"
    (folder / METADATA_FILE).write_text(text, encoding="utf-8")
