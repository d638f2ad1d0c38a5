"""Offline evaluation of the skip-risk model, WSDM Cup 2019 style (``nowplaying evaluate --skip``).

For every test session (the fixed split, :func:`models.labelled_sessions.split_sessions`), the
first half of its plays (``len // 2``) is known with its outcomes; each track of the second half
is predicted skipped early or not (its track known, the outcomes of the second half not). Scored
by MAA and first-track accuracy (:mod:`models.skip.accuracy`), against three baselines on the
same sessions:

* ``last_outcome``: every second-half track as the last known play (skipped early or not);
* ``session_rate``: skipped when at least half of the first half was skipped early;
* ``track_rate``: skipped when the track's smoothed training early-skip rate is at least 0.5
  (the version's artifacts, fitted on the training split; unknown tracks: the global rate).

``model`` predicts skipped when its probability reaches the threshold chosen on the validation
split. Intervals: 95% bootstrap over sessions (:class:`models.ranking_metrics.SessionBootstrap`,
1,000 resamples, the same for every method, so the model-minus-best-baseline difference is
paired). Also reported: the AUC of the ``online`` examples (what the worker scores: the state
right after the previous play's ``track_start``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from features.artifacts import TrackArtifacts
from models.datasets import DataError
from models.labelled_sessions import Session
from models.ranking_metrics import SessionBootstrap
from models.registry import ModelNotFoundError, resolve_version_dir
from models.skip.accuracy import session_accuracies
from models.skip.examples import SkipExample, example_rows, known_half, session_examples
from models.skip.scorer import SKIP_METADATA_FILE, SkipRiskModel
from models.skip.sequence_eval import ENSEMBLE, SEQUENCE_MODEL, Predict, offline_predictions
from models.skip.task_model import TaskModel
from models.skip.version_data import version_splits
from nowplaying.settings import Settings

MODEL: Final = "model"
#: The separate, offline WSDM evaluation model (:mod:`models.skip.task_model`), when present.
TASK_MODEL: Final = "task_model"
BASELINES: Final = ("last_outcome", "session_rate", "track_rate")
OFFLINE_MODELS: Final = (SEQUENCE_MODEL, ENSEMBLE)
SKIP_REPORT_FILE: Final = "skip_report.md"
#: The WSDM Cup 2019 winners' MAA on the full MSSD (with acoustic features this data lacks).
WSDM_WINNER_MAA: Final = 0.648


@dataclass
class SkipEvaluation:
    sessions: int = 0
    predictions: int = 0
    threshold: float = 0.5
    #: {method: {"maa" | "first": {"value", "low", "high"}}}
    methods: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    best_baseline: str = ""
    model_minus_best: dict[str, dict[str, float]] = field(default_factory=dict)
    task_model_minus_best: dict[str, dict[str, float]] = field(default_factory=dict)
    #: {sequence_model | ensemble: {"maa" | "first": difference}} (models.skip.sequence_eval)
    offline_minus_best: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    online_examples: int = 0
    online_auc: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_skip(
    scorer: SkipRiskModel,
    artifacts: TrackArtifacts,
    test: Sequence[Session],
    task_predict: Callable[[Sequence[Session]], NDArray[np.bool_]] | None = None,
    offline_predict: Predict | None = None,
) -> SkipEvaluation:
    """``task_predict``: the WSDM evaluation model's predictions of the tasks' second halves
    (in play order), scored as :data:`TASK_MODEL` when given; ``offline_predict``: those of the
    sequence model and the ensemble (:data:`OFFLINE_MODELS`)."""
    tasks = [s for s in test if 0 < known_half(s) < len(s.plays)]
    half: list[SkipExample] = []
    online: list[SkipExample] = []
    for s in tasks:
        examples = session_examples(s)
        half += [e for e in examples if e.is_half]
        online += [e for e in examples if e.known == e.target - 1]
    numbers = {s.session_id: i for i, s in enumerate(tasks)}
    sessions = np.array([numbers[e.session_id] for e in half], np.int64)
    actual = np.array([e.skipped for e in half], bool)
    predicted = {
        MODEL: scorer.risk(example_rows(half, artifacts)) >= scorer.threshold,
        **baseline_predictions(tasks, half, artifacts),
    }
    if task_predict is not None:
        predicted[TASK_MODEL] = task_predict(tasks)
    if offline_predict is not None:
        for name, values in offline_predict(tasks).items():
            if len(values) != len(half):
                raise ValueError(f"{name}: {len(values)} predictions of {len(half)} tracks")
            predicted[name] = values
    bootstrap = SessionBootstrap(np.arange(len(tasks)), len(tasks))
    per_method = {m: session_accuracies(sessions, p, actual) for m, p in predicted.items()}
    out = SkipEvaluation(sessions=len(tasks), predictions=len(half), threshold=scorer.threshold)
    for method, (aa, first) in per_method.items():
        out.methods[method] = {
            "maa": bootstrap.estimate(aa).to_json(),
            "first": bootstrap.estimate(first).to_json(),
        }
    out.best_baseline = max(BASELINES, key=lambda m: out.methods[m]["maa"]["value"])
    best_aa, best_first = per_method[out.best_baseline]
    model_aa, model_first = per_method[MODEL]
    out.model_minus_best = {
        "maa": bootstrap.difference(model_aa, best_aa).to_json(),
        "first": bootstrap.difference(model_first, best_first).to_json(),
    }
    if TASK_MODEL in per_method:
        task_aa, task_first = per_method[TASK_MODEL]
        out.task_model_minus_best = {
            "maa": bootstrap.difference(task_aa, best_aa).to_json(),
            "first": bootstrap.difference(task_first, best_first).to_json(),
        }
    for name in OFFLINE_MODELS:
        if name in per_method:
            aa, first = per_method[name]
            out.offline_minus_best[name] = {
                "maa": bootstrap.difference(aa, best_aa).to_json(),
                "first": bootstrap.difference(first, best_first).to_json(),
            }
    if online:
        risk = scorer.risk(example_rows(online, artifacts))
        out.online_examples = len(online)
        out.online_auc = auc(risk, np.array([e.skipped for e in online], bool))
    return out


def baseline_predictions(
    sessions: Sequence[Session], half: Sequence[SkipExample], artifacts: TrackArtifacts
) -> dict[str, NDArray[np.bool_]]:
    """Each baseline's prediction for each ``half`` example (in order)."""
    by_id = {s.session_id: s for s in sessions}
    last, rate = [], []
    for e in half:
        known = by_id[e.session_id].plays[: e.known]
        early = [p.outcome == "skip_early" for p in known]
        last.append(early[-1])
        rate.append(sum(early) >= len(early) / 2)
    track_rate = artifacts.track_table[artifacts.indices_of([e.track_id for e in half]), 2]
    return {
        "last_outcome": np.array(last, bool),
        "session_rate": np.array(rate, bool),
        "track_rate": np.asarray(track_rate >= 0.5),
    }


def auc(scores: NDArray[np.floating[Any]], positive: NDArray[np.bool_]) -> float:
    """Area under the ROC curve (ties count half), by ranks."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = np.asarray(scores)[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def skip_markdown(e: SkipEvaluation) -> list[str]:
    lines = [
        "## Skip prediction (WSDM Cup 2019 style)",
        "",
        f"Test split: {e.sessions} sessions; the first half of each (len // 2 plays) known with "
        f"its outcomes, {e.predictions} second-half tracks predicted skipped early or not. "
        f"Model threshold {e.threshold:.2f} (chosen on the validation split). 95% intervals: "
        "bootstrap over sessions (1,000 resamples, shared by all methods).",
        "",
        "| method | MAA | first-track accuracy |",
        "|---|---|---|",
    ]
    for method in (MODEL, TASK_MODEL, *OFFLINE_MODELS, *BASELINES):
        if method not in e.methods:
            continue
        f = e.methods[method]
        lines.append(f"| {method} | {_fmt(f['maa'])} | {_fmt(f['first'])} |")
    d = e.model_minus_best
    lines += [
        "",
        f"Best baseline: `{e.best_baseline}`. Model minus it (paired): MAA "
        f"**{d['maa']['value']:+.4f}** [{d['maa']['low']:+.4f}, {d['maa']['high']:+.4f}], "
        f"first-track accuracy {d['first']['value']:+.4f} "
        f"[{d['first']['low']:+.4f}, {d['first']['high']:+.4f}].",
        *_task_lines(e),
        f"For context only: the challenge's winners reached MAA {WSDM_WINNER_MAA} on the full "
        "MSSD, with acoustic track features this data lacks.",
        "",
        f"Online examples (state after the previous play's track_start, what the worker "
        f"scores): {e.online_examples}, AUC {e.online_auc:.4f}.",
    ]
    return lines


def _task_lines(e: SkipEvaluation) -> list[str]:
    named = {
        f"`{TASK_MODEL}` (the offline WSDM evaluation model, task features, not served)": (
            e.task_model_minus_best
        ),
        f"`{SEQUENCE_MODEL}` (offline GRU encoder-decoder)": e.offline_minus_best.get(
            SEQUENCE_MODEL, {}
        ),
        f"`{ENSEMBLE}` (mean probability of the two offline models)": e.offline_minus_best.get(
            ENSEMBLE, {}
        ),
    }
    return [
        f"{label} minus it: MAA **{d['maa']['value']:+.4f}** [{d['maa']['low']:+.4f}, "
        f"{d['maa']['high']:+.4f}], first-track accuracy {d['first']['value']:+.4f} "
        f"[{d['first']['low']:+.4f}, {d['first']['high']:+.4f}]."
        for label, d in named.items()
        if d
    ]


def _fmt(f: dict[str, float]) -> str:
    return f"{f['value']:.4f} [{f['low']:.4f}, {f['high']:.4f}]"


def run_skip(
    version_dir: Path,
    test: Sequence[Session],
    *,
    quiet: bool = False,
    train: Sequence[Session] | None = None,
) -> int:
    """Evaluate the version's skip model on ``test``; writes ``skip_report.md`` and the
    figures into ``skip.json``. With ``train`` (the version's training split), the WSDM
    evaluation model too when the version has one."""
    scorer = SkipRiskModel.load(version_dir)
    if scorer is None:
        print(
            f"nowplaying evaluate --skip: {version_dir} has no skip model: run "
            f"`python -m models.skip.train {version_dir}`",
            file=sys.stderr,
        )
        return 2
    artifacts = TrackArtifacts.load(version_dir)
    task = TaskModel.load(version_dir) if train is not None else None
    task_predict = None
    if task is not None and train is not None:
        known = train

        def task_predict(sessions: Sequence[Session]) -> NDArray[np.bool_]:
            return task.predict(sessions, known, artifacts)

    offline = offline_predictions(version_dir, train, artifacts) if train is not None else None
    evaluation = evaluate_skip(scorer, artifacts, test, task_predict, offline)
    lines = skip_markdown(evaluation)
    (version_dir / SKIP_REPORT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta_path = version_dir / SKIP_METADATA_FILE
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    metadata["evaluation"] = evaluation.to_json()
    meta_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    if not quiet:
        print("\n".join(lines))
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying evaluate --skip``: the version's skip model on its data's test split."""
    try:
        version_dir = args.model or resolve_version_dir(settings.model_dir, settings.model_version)
        train, _, test, description = version_splits(settings, version_dir)
    except (ModelNotFoundError, DataError, ValueError, OSError) as exc:
        print(f"nowplaying evaluate --skip: {exc}", file=sys.stderr)
        return 2
    print(f"data: {description}")
    return run_skip(version_dir, test, train=train)
