"""The ranker stage: onnxruntime as the stream runs it, LightGBM's predict, and the floor.

All three score the same real feature rows (states of replayed sessions, 200 candidates each),
one call at a time, on the benchmark core. The floor is a bare onnxruntime session (one thread,
all graph optimisations, sequential) on a pre-built contiguous float32 matrix: nothing a scoring
path can do beats it. The inference-only limit (events/s if the worker did nothing but score
``candidates`` rows per track start) follows from the floor's best rows/s, plus, for a model
version with a next-track sequence model (``sequence.onnx``, scored once per state in the
stream), the same bare session's best time per state of that model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnxruntime as ort

from devtools.bench.naive import booster_path
from devtools.bench.report import Limit, Report, StageResult
from devtools.bench.targets import EVENTS_PER_START, FLOOR_PER_START, INFERENCE_LIMIT
from devtools.bench.timing import time_per_call
from features.artifacts import TrackArtifacts
from features.candidates import generate_candidates
from features.context import state_context
from features.rows import rows_for
from features.sequence import sequence_inputs
from features.session import SessionState
from models.export import onnx_scores
from models.recommender import SEQUENCE_FILE, Recommender
from models.registry import MODEL_FILE
from nowplaying.settings import Settings

ROW_COUNTS = (1, 50, 200, 1000)
#: States per call of the sequence model's floor (the worker makes one call per batch).
STATE_COUNTS = (1, 50)


def floor_session(model_path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def real_rows(
    version_dir: Path, states: Sequence[SessionState], candidates: int, n: int
) -> np.ndarray:
    """At least ``n`` feature rows of real states and their candidates, C-contiguous float32."""
    artifacts = TrackArtifacts.load(version_dir)
    blocks = []
    total = 0
    for state in states:
        ctx = state_context(state, artifacts)
        block = rows_for(ctx, generate_candidates(ctx, artifacts, candidates).tracks, artifacts)
        blocks.append(block)
        total += len(block)
        if total >= n:
            break
    rows = np.concatenate(blocks)
    while len(rows) < n:
        rows = np.concatenate([rows, rows])
    return np.ascontiguousarray(rows[:n], dtype=np.float32)


def sequence_floor(
    version_dir: Path, states: Sequence[SessionState], report: Report, seconds: float
) -> tuple[float, float]:
    """The bare sequence model's seconds per state: (at one state per call, the best); zeros
    when the version has no sequence model."""
    path = version_dir / SEQUENCE_FILE
    if not path.exists():
        return 0.0, 0.0
    session = floor_session(path)
    artifacts = TrackArtifacts.load(version_dir)
    per_state: dict[int, float] = {}
    for n in STATE_COUNTS:
        batch = [states[i % len(states)] for i in range(n)]
        tracks, outcomes, lengths = sequence_inputs(batch, artifacts)
        feed = {"tracks": tracks, "outcomes": outcomes, "lengths": lengths}
        t = time_per_call(partial(session.run, None, feed), seconds)
        per_state[n] = t / n
        label = f"{n} state{'s' if n > 1 else ''}"
        report.stages.append(
            StageResult("ranker", "sequence model, bare onnxruntime (floor)", f"{label}/call",
                        t * 1000, n / t, "states/s", f"sequence floor, {label}", n / t)
        )  # fmt: skip
    return per_state[1], min(per_state.values())


def ranker_stage(
    settings: Settings,
    version_dir: Path,
    states: Sequence[SessionState],
    report: Report,
    quick: bool,
) -> None:
    seconds = 0.2 if quick else 2.0
    n_cand = settings.candidates
    matrix = real_rows(version_dir, states, n_cand, max(ROW_COUNTS))
    floor = floor_session(version_dir / MODEL_FILE)
    floor_input = floor.get_inputs()[0].name
    recommender = Recommender.load(
        version_dir, intra_op_threads=settings.ort_intra_op_threads, candidates=n_cand
    )
    booster = lgb.Booster(model_file=str(booster_path(version_dir)))
    floor_rate: dict[int, float] = {}
    for n in ROW_COUNTS:
        x = matrix[:n]
        t_floor = time_per_call(partial(floor.run, None, {floor_input: x}), seconds)
        t_stream = time_per_call(partial(onnx_scores, recommender.session, x), seconds)
        t_lgb = time_per_call(partial(booster.predict, x, num_threads=1), seconds)
        floor_rate[n] = n / t_floor
        limit_name = f"floor, {n} rows"
        report.stages += [
            StageResult("ranker", "bare onnxruntime (floor)", f"{n} rows/call", t_floor * 1000,
                        n / t_floor, "rows/s", limit_name, n / t_floor),
            StageResult("ranker", "onnxruntime as in the stream", f"{n} rows/call",
                        t_stream * 1000, n / t_stream, "rows/s", limit_name, n / t_floor),
            StageResult("ranker", "LightGBM predict", f"{n} rows/call", t_lgb * 1000,
                        n / t_lgb, "rows/s", limit_name, n / t_floor),
        ]  # fmt: skip
    for per_call in (1, 5):
        batch = list(states[:per_call])
        t_rec = time_per_call(partial(recommender.recommend, batch, settings.top_k), seconds)
        rows = per_call * n_cand
        limit = floor_rate.get(rows, max(floor_rate.values())) / n_cand
        report.stages.append(
            StageResult(
                "ranker",
                "Recommender.recommend (context, candidates, rows, ORT, top-k)",
                f"{per_call} track start{'s' if per_call > 1 else ''}/call",
                t_rec * 1000,
                per_call / t_rec,
                "track starts/s",
                f"floor, {rows} rows",
                limit,
            )
        )
    best_rows = max(floor_rate.get(n_cand, 0.0), floor_rate.get(max(ROW_COUNTS), 0.0))
    per_start = floor_rate.get(n_cand) or best_rows
    seq_one, seq_best = sequence_floor(version_dir, states, report, seconds)
    with_seq = " + the sequence model's bare time per state" if seq_best else ""
    report.limits += [
        Limit(
            INFERENCE_LIMIT,
            EVENTS_PER_START / (n_cand / best_rows + seq_best),
            "events/s",
            f"bare onnxruntime's best rows/s (200 or 1000 rows/call) for {n_cand} candidates"
            f"{with_seq} per track start, x {EVENTS_PER_START:g} events per track start",
        ),
        Limit(
            FLOOR_PER_START,
            1.0 / (n_cand / per_start + seq_one),
            "track starts/s",
            f"bare onnxruntime at {n_cand} rows/call{with_seq} (one state/call)",
        ),
    ]
