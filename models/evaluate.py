"""Offline evaluation on held-out sessions: what is served, against baselines, side by side.

The main figures are those of the SERVED lists (:mod:`models.served_evaluation`: the top-10 of
``Recommender.recommend`` against baselines that rank the full catalogue, with bootstrap
intervals; :mod:`models.served_report` writes that part of the report). This module adds the
secondary candidate-rerank table, and writes ``report.md``, ``metrics.json`` and the chart.

Candidate rerank: every query is a point-in-time prefix (:mod:`models.ranking_queries`): the
state right after a ``track_start``; the target is the session's actual next track with gain
:data:`models.ranking_queries.GAIN`. All three methods order the SAME candidate list (the
generator's, at most 200 tracks, none already played in the session):

* ``popularity``: most played in training first;
* ``colisten``: most often played right after the current track in training first (ties by
  popularity);
* ``ranker``: the LambdaRank model, scored through the exported ONNX graph (what is served).

Metrics (all ties broken by track id):

* candidate recall@N: share of all queries whose next track is among the candidates;
* NDCG@10 with graded gains ``2**gain - 1``, averaged over queries whose next track has a
  positive gain (listened or skipped late); with a single relevant track per query the per-query
  value is ``1 / log2(1 + rank)`` when it is ranked in the top 10, else 0;
* HitRate@10: share of queries whose next track was listened through that have it in the top 10.
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
from tqdm import tqdm

from features.artifacts import F32, TrackArtifacts
from models.datasets import DataError, load_sessions
from models.labelled_sessions import Session, fingerprint, split_sessions
from models.ranking_queries import Query, session_queries
from models.recommender import Recommender, Scored
from models.registry import ModelNotFoundError, resolve_version_dir
from models.served_evaluation import evaluate_served
from models.served_report import plot_served, served_markdown, served_table
from nowplaying.settings import Settings

METHODS: Final = ("popularity", "colisten", "ranker")
CUTOFF: Final = 10
REPORT_FILE: Final = "report.md"
METRICS_FILE: Final = "metrics.json"
CHART_FILE: Final = "metrics.png"

Reference = Callable[[F32], np.ndarray]


@dataclass
class Evaluation:
    sessions: int = 0
    queries: int = 0
    positive_queries: int = 0  # next track listened or skipped late
    listened_queries: int = 0
    candidates: int = 0  # the generator's list length
    candidate_recall: float = 0.0
    candidate_recall_positive: float = 0.0
    #: over the queries whose next track was not played before in the session
    candidate_recall_non_repeat: float = 0.0
    ndcg_at_10: dict[str, float] = field(default_factory=dict)
    hitrate_at_10: dict[str, float] = field(default_factory=dict)
    rows_scored: int = 0
    parity_rows: int = 0  # rows also scored by the reference model
    parity_max_abs_diff: float | None = None  # ONNX vs the reference model on those rows
    #: the served lists against the full-catalogue baselines (ServedEvaluation.to_json())
    served: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def best_baseline(self) -> str:
        return max(("popularity", "colisten"), key=lambda m: self.ndcg_at_10.get(m, 0.0))


@dataclass
class _Tally:
    queries: int = 0
    in_candidates: int = 0
    non_repeat: int = 0
    non_repeat_in_candidates: int = 0
    positive: int = 0
    positive_in_candidates: int = 0
    listened: int = 0
    ndcg: dict[str, float] = field(default_factory=lambda: dict.fromkeys(METHODS, 0.0))
    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METHODS, 0))
    rows: int = 0
    checked: int = 0  # rows also scored by the reference
    max_diff: float = 0.0


def evaluate_sessions(
    recommender: Recommender,
    sessions: Sequence[Session],
    *,
    reference: Reference | None = None,
    reference_rows: int | None = None,
    batch_states: int = 256,
    progress: bool = False,
) -> Evaluation:
    """Evaluate on these (held-out) sessions. ``reference`` (e.g. LightGBM's ``predict``) also
    scores the rows, for the ONNX parity figure: all of them, or the batches holding the first
    ``reference_rows``."""
    tally = _Tally()
    batch: list[Query] = []
    bar = tqdm(sessions, desc="evaluate", unit="session", disable=not progress, leave=False)
    for session in bar:
        for query in session_queries(session):
            batch.append(query)
            if len(batch) >= batch_states:
                _score_batch(recommender, batch, tally, _still(reference, reference_rows, tally))
                batch = []
    if batch:
        _score_batch(recommender, batch, tally, _still(reference, reference_rows, tally))
    return _summarise(tally, len(sessions), recommender.candidates, reference is not None)


def _still(reference: Reference | None, limit: int | None, tally: _Tally) -> Reference | None:
    """The reference while fewer than ``limit`` rows have been checked against it."""
    return reference if limit is None or tally.checked < limit else None


def _score_batch(
    recommender: Recommender, batch: list[Query], tally: _Tally, reference: Reference | None
) -> None:
    art = recommender.artifacts
    scored = recommender.score([q.state for q in batch], keep_rows=reference is not None)
    if reference is not None:
        rows = [item.rows for item in scored if item.rows is not None and len(item.rows)]
        if rows:
            expected = np.asarray(reference(np.concatenate(rows)))
            actual = np.concatenate([item.scores for item in scored])
            tally.max_diff = max(tally.max_diff, float(np.abs(expected - actual).max()))
            tally.checked += len(actual)
    for query, item in zip(batch, scored, strict=True):
        target = art.index.get(query.next_track, -1)
        found = np.flatnonzero(item.candidates.tracks == target)
        tally.queries += 1
        tally.in_candidates += len(found) > 0
        if query.next_track not in query.state.played:
            tally.non_repeat += 1
            tally.non_repeat_in_candidates += len(found) > 0
        if query.gain == 0:
            continue  # skipped early: it only counts towards candidate recall
        tally.rows += len(item.scores)
        tally.positive += 1
        tally.listened += query.gain == 2
        if len(found) == 0:
            continue
        tally.positive_in_candidates += 1
        for method, rank in method_ranks(item, art, int(found[0])).items():
            if rank <= CUTOFF:
                tally.ndcg[method] += ndcg_single(query.gain, rank)
                tally.hits[method] += query.gain == 2


def method_ranks(item: Scored, artifacts: TrackArtifacts, position: int) -> dict[str, int]:
    """1-based rank of the candidate at ``position`` under each method (ties by track id)."""
    tracks = item.candidates.tracks
    popularity = artifacts.plays[tracks]
    current = np.full(len(tracks), item.context.current, np.int64)
    colisten, _ = artifacts.pair_counts(current, tracks.astype(np.int64))
    orders = {
        "popularity": np.lexsort((tracks, -popularity)),
        "colisten": np.lexsort((tracks, -popularity, -colisten)),
        "ranker": np.lexsort((tracks, -item.scores)),
    }
    return {m: int(np.flatnonzero(order == position)[0]) + 1 for m, order in orders.items()}


def ndcg_single(gain: int, rank: int, cutoff: int = CUTOFF) -> float:
    """NDCG@cutoff of a query with one relevant item of graded ``gain`` found at ``rank``."""
    if gain <= 0 or rank > cutoff:
        return 0.0
    ideal = (2.0**gain - 1.0) / np.log2(2.0)
    return float((2.0**gain - 1.0) / np.log2(1.0 + rank) / ideal)


def _summarise(tally: _Tally, sessions: int, candidates: int, with_parity: bool) -> Evaluation:
    pos = max(tally.positive, 1)
    listened = max(tally.listened, 1)
    return Evaluation(
        sessions=sessions,
        queries=tally.queries,
        positive_queries=tally.positive,
        listened_queries=tally.listened,
        candidates=candidates,
        candidate_recall=tally.in_candidates / max(tally.queries, 1),
        candidate_recall_positive=tally.positive_in_candidates / pos,
        candidate_recall_non_repeat=tally.non_repeat_in_candidates / max(tally.non_repeat, 1),
        ndcg_at_10={m: tally.ndcg[m] / pos for m in METHODS},
        hitrate_at_10={m: tally.hits[m] / listened for m in METHODS},
        rows_scored=tally.rows,
        parity_rows=tally.checked,
        parity_max_abs_diff=tally.max_diff if with_parity else None,
    )


# --- report ---------------------------------------------------------------------------------


def write_report(version_dir: Path, evaluation: Evaluation, context: dict[str, Any]) -> None:
    """``report.md``, ``metrics.json`` and the chart ``metrics.png`` into the version folder."""
    payload = {"evaluation": evaluation.to_json(), **context}
    (version_dir / METRICS_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    _write_chart(version_dir / CHART_FILE, evaluation, str(context.get("version", "")))
    (version_dir / REPORT_FILE).write_text(report_markdown(evaluation, context), encoding="utf-8")


def report_markdown(evaluation: Evaluation, context: dict[str, Any]) -> str:
    e = evaluation
    best = e.best_baseline
    lift = e.ndcg_at_10["ranker"] - e.ndcg_at_10[best]
    lines = [
        f"# Offline evaluation of model {context.get('version', '?')}",
        "",
        f"Data: {context.get('data', '?')}",
        "",
        *([*served_markdown(e.served), ""] if e.served else []),
        "## Candidate rerank (secondary): three orders of the generator's candidates",
        "",
        f"Test split: {e.sessions} held-out sessions (fixed seeded 80/10/10 session split), "
        f"{e.queries} point-in-time queries (state right after each track_start; target: the "
        f"actual next track), {e.positive_queries} with a listened or late-skipped next track, "
        f"{e.listened_queries} listened.",
        "",
        f"Candidate recall@{e.candidates}: **{e.candidate_recall:.4f}** of all queries have the "
        f"actual next track among the candidates ({e.candidate_recall_positive:.4f} of the "
        f"queries with a positive gain; **{e.candidate_recall_non_repeat:.4f}** of those whose "
        "next track was not played before in the session). Tracks already played in the "
        "session are never candidates, so repeats count as misses.",
        "",
        "| method | NDCG@10 (graded) | HitRate@10 (listened) |",
        "|---|---|---|",
    ]
    for m in METHODS:
        lines.append(f"| {m} | {e.ndcg_at_10[m]:.4f} | {e.hitrate_at_10[m]:.4f} |")
    lines += [
        "",
        f"Best baseline: {best}. Ranker NDCG@10 minus best baseline: **{lift:+.4f}**.",
        "",
        "All methods order the same candidate list; ties are broken by track id. NDCG@10 uses "
        "gains 2^g - 1 (listened g=2, skipped late g=1) over queries with g > 0.",
    ]
    if e.parity_max_abs_diff is not None:
        lines += [
            "",
            f"ONNX vs LightGBM on {e.parity_rows} of the {e.rows_scored} scored test rows: "
            f"max |score difference| = {e.parity_max_abs_diff:.3g}.",
        ]
    lines += ["", f"![metrics]({CHART_FILE})", ""]
    return "\n".join(lines)


def _write_chart(path: Path, evaluation: Evaluation, version: str) -> None:
    import matplotlib  # noqa: PLC0415 - imported only when a report is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    served = evaluation.served
    if served:
        fig, (ax, bottom) = plt.subplots(
            2,
            1,
            figsize=(8, 4 + 0.55 * len(served["methods"])),
            dpi=100,
            height_ratios=[1, 0.3 * len(served["methods"])],
        )
        plot_served(bottom, served)
    else:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = np.arange(2)
    width = 0.26
    for i, method in enumerate(METHODS):
        values = [evaluation.ndcg_at_10[method], evaluation.hitrate_at_10[method]]
        bars = ax.bar(x + (i - 1) * width, values, width, label=method)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(x, ["NDCG@10 (graded)", "HitRate@10 (listened)"])
    ax.set_ylim(0, 1)
    ax.set_title(
        f"Candidate rerank, {evaluation.queries} queries; candidate recall@"
        f"{evaluation.candidates} = {evaluation.candidate_recall:.3f}",
        fontsize=9,
    )
    ax.legend()
    fig.suptitle(f"nowplaying model {version}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary_table(evaluation: Evaluation) -> str:
    """The figures as a plain-text table, for the terminal."""
    rows = [f"{'method':<12} {'NDCG@10':>9} {'HitRate@10':>11}"]
    for m in METHODS:
        rows.append(
            f"{m:<12} {evaluation.ndcg_at_10[m]:>9.4f} {evaluation.hitrate_at_10[m]:>11.4f}"
        )
    rows.append(
        f"candidate recall@{evaluation.candidates}: {evaluation.candidate_recall:.4f} "
        f"({evaluation.queries} queries, {evaluation.sessions} test sessions)"
    )
    if evaluation.served:
        rows = [served_table(evaluation.served), "", "candidate rerank (secondary):", *rows]
    return "\n".join(rows)


# --- command --------------------------------------------------------------------------------


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying evaluate``: evaluate a model version on its data's test split."""
    if getattr(args, "skip", False):
        from models.skip.evaluation import run as run_skip  # noqa: PLC0415

        return run_skip(settings, args)
    if getattr(args, "steering", False):
        from models.steering_report import run as run_steering  # noqa: PLC0415

        return run_steering(settings, args)
    try:
        version_dir = args.model or resolve_version_dir(settings.model_dir, settings.model_version)
        recommender = Recommender.served(version_dir, settings)
    except (ModelNotFoundError, ValueError, OSError) as exc:
        print(f"nowplaying evaluate: {exc}", file=sys.stderr)
        return 2
    data_meta: dict[str, Any] = recommender.metadata.get("data", {})
    try:
        sessions, description = _sessions_for(settings, args, data_meta)
    except (DataError, OSError) as exc:
        print(f"nowplaying evaluate: {exc}", file=sys.stderr)
        return 2
    seed = int(data_meta.get("split_seed", args.seed))
    train, _, test = split_sessions(sessions, seed=seed)
    if fingerprint(train) != data_meta.get("train_fingerprint"):
        print(
            "warning: this data's training split differs from the one the model was trained on; "
            "test sessions may have been seen in training",
            file=sys.stderr,
        )
    evaluation = evaluate_sessions(recommender, test, progress=not args.no_progress)
    served = evaluate_served(recommender, train, test, progress=not args.no_progress)
    evaluation.served = served.to_json()
    # The ablation is made by `nowplaying train --ablation` (it needs the training rows): kept.
    previous = (recommender.metadata.get("metrics") or {}).get("served") or {}
    if previous.get("ablation"):
        evaluation.served["ablation"] = previous["ablation"]
    write_report(
        version_dir,
        evaluation,
        {"version": recommender.model_version, "data": description, "split_seed": seed},
    )
    print(summary_table(evaluation))
    print(f"report: {version_dir / REPORT_FILE}")
    return 0


def _sessions_for(
    settings: Settings, args: argparse.Namespace, data_meta: dict[str, Any]
) -> tuple[list[Session], str]:
    """The command line's data, or by default the data the model was trained on."""
    if args.data is not None or args.synthetic:
        return load_sessions(settings, args.data, args.synthetic, args.sessions)
    synthetic = data_meta.get("kind") == "synthetic"
    path = data_meta.get("path")
    limit = args.sessions if args.sessions is not None else data_meta.get("limit")
    return load_sessions(settings, Path(path) if path else None, synthetic, limit)
