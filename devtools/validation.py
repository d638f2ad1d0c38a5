"""Validation-split figures of a model version: candidate recall per generator and served lists.

    python -m devtools.validation VERSION_DIR [--candidates 100 200] [--served] [--sessions N]

Reads the version's data set and split seed from its metadata and works on the VALIDATION split
(never the test split: this is the tool to tune with). Prints, over the non-repeat positions
whose next track is known to the artifacts:

* recall@N of the generated candidates (``features.candidates``) for each N, and which source
  proposed the hits;
* each generator's own recall@N: its scores alone ranked over the catalogue (played tracks
  excluded, only positive scores for the sparse ones), so the misses of the union can be traced;
* with ``--plan``: another priority order and quotas of the scored generators
  (``features.candidates.PLAN``), to try before changing the default;
* with ``--served``: served HR@10 / MRR@10 (non-repeat, 95% intervals) at each N, with the
  transitions-3 baseline and the paired difference.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from features import candidates
from features.artifacts import F32, TrackArtifacts
from features.candidates import SOURCES, generate_candidates_many, ngram_scores
from features.context import StateContext, state_contexts
from models.baselines import BASELINES
from models.datasets import load_sessions
from models.labelled_sessions import split_sessions
from models.ranking_queries import Query, session_queries
from models.recommender import Recommender
from models.registry import METADATA_FILE
from models.served_evaluation import evaluate_served
from nowplaying.settings import Settings

BATCH = 200


def generator_scores(ctx: StateContext, artifacts: TrackArtifacts) -> dict[str, F32]:
    """Each generator's scores of every track ([T]) for one state."""
    n = artifacts.n_tracks
    out = {
        "ngram": ngram_scores([ctx], artifacts)[0][:n],
        "colisten": ctx.colisten[:n],
        "knn": ctx.knn[:n],
        "two_step": ctx.two_step[:n],
    }
    if ctx.sequence is not None:
        out["sequence"] = ctx.sequence[:n]
    return out


def rank_of(scores: F32, target: int, played: np.ndarray, dense: bool) -> int:
    """1-based rank of ``target`` among the unplayed tracks by score (0: not ranked)."""
    masked = scores.astype(np.float64).copy()
    masked[played] = -np.inf
    value = masked[target]
    if not np.isfinite(value) or (not dense and value <= 0):
        return 0
    return int((masked > value).sum()) + 1


def recall_report(
    recommender: Recommender, queries: Sequence[Query], counts: Sequence[int], alone: bool = True
) -> dict[str, object]:
    artifacts = recommender.artifacts
    index = artifacts.index
    union = {n: 0 for n in counts}
    by_source = {n: dict.fromkeys(SOURCES, 0) for n in counts}
    per_generator: dict[str, dict[int, int]] = {}
    total = 0
    for start in range(0, len(queries), BATCH):
        batch = queries[start : start + BATCH]
        states = [q.state for q in batch]
        seq = recommender.sequence.scores(states, artifacts) if recommender.sequence else None
        contexts = state_contexts(states, artifacts, seq)
        targets = [index.get(q.next_track, -1) for q in batch]
        for n in counts:
            generated = generate_candidates_many(contexts, artifacts, n)
            for cands, target in zip(generated, targets, strict=True):
                hit = np.flatnonzero(cands.tracks == target)
                if len(hit):
                    union[n] += 1
                    by_source[n][SOURCES[int(cands.sources[hit[0]])]] += 1
        total += len(batch)
        for ctx, target in zip(contexts, targets, strict=True):
            if not alone:
                break
            for name, scores in generator_scores(ctx, artifacts).items():
                rank = rank_of(scores, target, ctx.played, dense=name == "sequence")
                per = per_generator.setdefault(name, dict.fromkeys(counts, 0))
                for n in counts:
                    per[n] += int(0 < rank <= n)
    return {
        "queries": total,
        "union": {n: union[n] / max(total, 1) for n in counts},
        "hits_by_source": by_source,
        "alone": {
            g: {n: v / max(total, 1) for n, v in per.items()} for g, per in per_generator.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", type=Path)
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--served", action="store_true")
    parser.add_argument("--no-recall", action="store_true")
    parser.add_argument("--union-only", action="store_true", help="no per-generator recall")
    parser.add_argument("--sessions", type=int, default=None, help="validation sessions used")
    parser.add_argument(
        "--plan", default=None, help="generators and quotas to try, e.g. ngram:50,sequence:30,..."
    )
    args = parser.parse_args(argv)
    if args.plan:
        candidates.PLAN = tuple(
            (SOURCES.index(name), int(quota))
            for name, quota in (part.split(":") for part in args.plan.split(","))
        )
    settings = Settings()
    metadata = json.loads((args.version / METADATA_FILE).read_text(encoding="utf-8"))
    data = metadata["data"]
    path = Path(data["path"]) if data.get("path") else None
    sessions, _ = load_sessions(settings, path, data.get("kind") == "synthetic", data.get("limit"))
    train, val, _test = split_sessions(sessions, seed=int(data["split_seed"]))
    val = val[: args.sessions] if args.sessions else val
    recommender = Recommender.load(args.version)
    known = recommender.artifacts.index
    queries = [
        q
        for s in val
        for q in session_queries(s)
        if q.next_track not in q.state.played and q.next_track in known
    ]
    if not args.no_recall:
        report = recall_report(recommender, queries, args.candidates, not args.union_only)
        print(json.dumps(report, indent=1))
    if args.served:
        t3 = [m for m in BASELINES if m.name == "transitions-3"]
        for n in args.candidates:
            recommender.candidates = n
            result = evaluate_served(recommender, train, val, methods=t3, resamples=200)
            fig = result.methods["served"].figures["non_repeat"]
            base = result.methods["transitions-3"].figures["non_repeat"]
            diff = result.served_minus_best
            print(
                f"served@{n} non-repeat HR@10 {fig['hr']['value']:.4f} "
                f"[{fig['hr']['low']:.4f}, {fig['hr']['high']:.4f}] MRR@10 "
                f"{fig['mrr']['value']:.4f} [{fig['mrr']['low']:.4f}, {fig['mrr']['high']:.4f}]"
                f" | t3 {base['hr']['value']:.4f} / {base['mrr']['value']:.4f} | diff HR "
                f"{diff['hr']['value']:+.4f} MRR {diff['mrr']['value']:+.4f} | "
                f"{result.methods['served'].cpu_ms_per_query:.3f} ms/query"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
