"""Feature rows: (session state, candidate track) -> one float32 row in :data:`FEATURE_NAMES` order.

The same function builds the training rows (offline, from states folded out of a session's
events) and the rows the stream worker scores (online, from the state folded out of the Redis
session log), so the two cannot drift. Every model stores ``FEATURE_NAMES`` and
``FEATURE_VERSION`` in its metadata; the recommender refuses a model built for other features.

Bump :data:`FEATURE_VERSION` whenever a feature's meaning, order or computation changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Final

import numpy as np
from numpy.typing import NDArray

from features.artifacts import F32, I32, TrackArtifacts
from features.context import MAX_BATCH_CELLS, StateContext, state_context
from features.session import SessionState

FEATURE_VERSION: Final = "2"

SESSION_FEATURES: Final = (
    "session_position",  # tracks started so far, the current one included
    "session_plays",  # tracks ended
    "session_skips",  # early skips
    "session_late_skips",
    "session_listens",
    "session_skip_rate",  # (early + late skips) / plays
    "session_recency_skip_rate",  # exponentially weighted skip share
    "session_consecutive_skips",
    "current_known",  # 1 when the current track is in the artifacts
    "current_skip_rate",  # smoothed skip rate of the track now playing
    "current_log_out",  # log1p(transitions out of the current track)
    "context2_log_total",  # log1p(times (previous, current) was followed by anything)
    "context3_log_total",  # log1p(times (previous2, previous, current) was followed)
)
CANDIDATE_FEATURES: Final = (
    "cand_log_plays",  # log1p(play count): popularity
    "cand_skip_rate",  # smoothed share skipped (early or late)
    "cand_early_skip_rate",
    "tr_current_log",  # log1p(count current -> cand): the co-listen baseline's score
    "tr_previous_log",  # log1p(count previous track -> cand)
    "tr_last_listened_log",  # log1p(count last listened-through track -> cand)
    "tr_last_skipped_log",  # log1p(count last skipped track -> cand)
    "tr_reverse_log",  # log1p(count cand -> current)
    "tr_current_listened_log",  # log1p(count current -> cand where cand was listened through)
    "tr_current_share",  # count(current -> cand) / transitions out of current
    "tr_current_listen_rate",  # listened share of current -> cand, smoothed to cand's own
    "colisten_recent_log",  # log1p(recency-weighted co-listen score over the recent tracks)
    "sim_current",  # cosine(cand, current track) in embedding space
    "sim_listened",  # cosine(cand, listened-taste centroid)
    "sim_skipped",  # cosine(cand, skipped-taste centroid)
    "sim_recent",  # cosine(cand, recent tracks' centroid)
    "tr2_log",  # log1p(count (previous, current) -> cand)
    "tr3_log",  # log1p(count (previous2, previous, current) -> cand)
    "tr2_share",  # count (previous, current) -> cand / times the context was followed
    "tr3_share",
    "tr_current_after_skip_log",  # log1p(count current -> cand when current was skipped)
    "tr_current_after_listen_log",  # ... when current was listened through
    "tr_last_skipped_after_skip_log",  # log1p(count last skipped -> cand, it being skipped)
    "tr_last_listened_after_listen_log",  # log1p(count last listened -> cand, it listened)
    "two_step",  # P(current -> x -> cand)
    "knn_score",  # V-SKNN score over the recent tracks (features.neighbours)
    "knn_share",  # knn_score / the state's best knn_score
    "seq_logit",  # the sequence model's logit (0 without a sequence model)
    "seq_log_prob",  # its log-softmax over the catalogue
    "seq_log_rank",  # log1p(tracks of the catalogue with a higher logit)
)
#: The higher-order and the sequence-model columns (the ablations leave them out).
HIGHER_ORDER_FEATURES: Final = (
    "context2_log_total",
    "context3_log_total",
    "tr2_log",
    "tr3_log",
    "tr2_share",
    "tr3_share",
)
SEQUENCE_FEATURES: Final = ("seq_logit", "seq_log_prob", "seq_log_rank")
FEATURE_NAMES: Final[tuple[str, ...]] = SESSION_FEATURES + CANDIDATE_FEATURES
N_FEATURES: Final = len(FEATURE_NAMES)
#: Pseudo-transitions of the candidate's own listen rate in ``tr_current_listen_rate``.
LISTEN_RATE_PRIOR: Final = 2.0

_S: Final = len(SESSION_FEATURES)
_TRACK: Final = slice(_S, _S + 3)
_PAIRS: Final = slice(_S + 3, _S + 8)
_SIMS: Final = slice(_S + 12, _S + 16)
_HIGH: Final = _S + 16  # tr2_log: the first of the version-2 candidate columns


def rows_for(ctx: StateContext, tracks: I32, artifacts: TrackArtifacts) -> F32:
    """Rows ``[len(tracks), N_FEATURES]`` for candidate track indices (-1: unknown track)."""
    return rows_for_many([ctx], [tracks], artifacts)


def rows_for_many(
    contexts: Sequence[StateContext], tracks: Sequence[I32], artifacts: TrackArtifacts
) -> F32:
    """The rows of several states' candidates, stacked in order: ``rows_for`` of each, built
    with one array operation per feature group for a chunk of states at a time. A row does not
    depend on the other states in the batch."""
    sizes = [len(t) for t in tracks]
    out = np.empty((sum(sizes), N_FEATURES), dtype=np.float32)
    # Chunks bound the dense pair-count table: _PAIR_ROWS rows of T + 1 cells per state.
    chunk = max(1, MAX_BATCH_CELLS // (_PAIR_ROWS * (artifacts.n_tracks + 1)))
    start = 0
    for i in range(0, len(contexts), chunk):
        size = sum(sizes[i : i + chunk])
        if size:
            _fill_rows(
                out[start : start + size],
                contexts[i : i + chunk],
                tracks[i : i + chunk],
                sizes[i : i + chunk],
                artifacts,
            )
        start += size
    return out


#: Per state and track t, the pair values gathered at the candidates: log1p(count(source -> t))
#: for the current, previous, last listened and last skipped tracks, log1p(count(t -> current)),
#: then count(current -> t) and its listened count, the counts after a skipped current, after
#: the last skipped track (skipped) and after the last listened track (listened).
_PAIR_ROWS: Final = 10
_REVERSE, _COUNT, _LISTENED, _AFTER_SKIP, _SKIPPED_SKIP, _LISTENED_LISTEN = 4, 5, 6, 7, 8, 9


def _fill_rows(
    out: F32,
    contexts: Sequence[StateContext],
    tracks: Sequence[I32],
    sizes: list[int],
    artifacts: TrackArtifacts,
) -> None:
    n_states, n = len(contexts), len(out)
    cand = np.concatenate(tracks).astype(np.int64)
    out[:, :_S] = np.repeat(np.array([c.session_features for c in contexts]), sizes, axis=0)
    out[:, _TRACK] = artifacts.track_table.take(cand, axis=0)  # -1: the unknown-track row
    # Pair values: scatter the few source tracks' CSR rows into a dense [state, track] table,
    # gather at the candidates. A source or candidate of -1 reads 0 (no row; the extra column).
    width = artifacts.n_tracks + 1
    table = np.zeros((n_states * width, _PAIR_ROWS), dtype=np.float32)
    sources = [(c.current, c.previous, c.last_listened, c.last_skipped) for c in contexts]
    known = [(i, s) for i, s in enumerate(chain.from_iterable(sources)) if s >= 0]
    if known:
        which, source = np.array(known, dtype=np.int64).T
        of, entry = artifacts.transition_rows(source)
        state, kind = np.divmod(which[of], 4)
        cells = state * width + artifacts.trans_indices[entry]
        table[cells, kind] = artifacts.trans_log_count[entry]
        after_skip = artifacts.trans_after_skip[entry]
        skipped_src, listened_src = kind == 3, kind == 2
        table[cells[skipped_src], _SKIPPED_SKIP] = after_skip[skipped_src]
        table[cells[listened_src], _LISTENED_LISTEN] = (artifacts.trans_count[entry] - after_skip)[
            listened_src
        ]
        of_current = kind == 0
        cells, entry = cells[of_current], entry[of_current]
        table[cells, _COUNT] = artifacts.trans_count[entry]
        table[cells, _LISTENED] = artifacts.trans_listened[entry]
        table[cells, _AFTER_SKIP] = artifacts.trans_after_skip[entry]
    current = np.array([c.current for c in contexts], dtype=np.int64)
    states = np.flatnonzero(current >= 0)
    if len(states):
        of, entry = artifacts.transition_rows(current[states], reverse=True)
        cells = states[of] * width + artifacts.pred_indices[entry]
        table[cells, _REVERSE] = artifacts.pred_log_count[entry]
    owner = np.repeat(np.arange(n_states), sizes)  # the state of each row
    pairs = table.take(owner * width + cand % width, axis=0)
    out[:, _PAIRS] = pairs[:, :_COUNT]
    cur_count, cur_listened = pairs[:, _COUNT], pairs[:, _LISTENED]
    current = current[owner]
    out_count = np.where(current >= 0, artifacts.out_count[current], np.float32(0.0))
    out[:, _S + 8] = np.log1p(cur_listened)
    out[:, _S + 9] = np.divide(
        cur_count, out_count, out=np.zeros(n, np.float32), where=out_count > 0
    )
    cand_listen = 1.0 - out[:, _S + 1]
    out[:, _S + 10] = (cur_listened + LISTEN_RATE_PRIOR * cand_listen) / (
        cur_count + LISTEN_RATE_PRIOR
    )
    after_skip = pairs[:, _AFTER_SKIP]
    out[:, _HIGH + 4] = np.log1p(after_skip)
    out[:, _HIGH + 5] = np.log1p(cur_count - after_skip)
    out[:, _HIGH + 6] = np.log1p(pairs[:, _SKIPPED_SKIP])
    out[:, _HIGH + 7] = np.log1p(pairs[:, _LISTENED_LISTEN])
    _fill_higher_order(out, contexts, owner, cand, artifacts)
    embeddings = artifacts.embedding_table64.take(cand, axis=0)
    colisten = np.empty(n, dtype=np.float32)
    start = 0
    for ctx, size in zip(contexts, sizes, strict=True):
        rows = slice(start, start + size)
        at = cand[rows] % width
        colisten[rows] = ctx.colisten[at]
        # float64 products (exact float32 embeddings) rounded once: unlike a float32 matrix
        # product, a value then does not depend on the batch's size.
        out[rows, _SIMS] = embeddings[rows] @ ctx.directions
        out[rows, _HIGH + 8] = ctx.two_step[at]
        knn = ctx.knn[at]
        best = ctx.knn.max()
        out[rows, _HIGH + 9] = knn
        out[rows, _HIGH + 10] = knn / best if best > 0 else 0.0
        _fill_sequence(out[rows], ctx, at, artifacts.n_tracks)
        start += size
    out[:, _S + 11] = np.log1p(colisten)


def _fill_higher_order(
    out: F32,
    contexts: Sequence[StateContext],
    owner: NDArray[np.int64],
    cand: NDArray[np.int64],
    artifacts: TrackArtifacts,
) -> None:
    """tr2/tr3 counts and shares: one searchsorted per table over all rows."""
    for table, codes, col in (
        (artifacts.ngram2, [c.context2 for c in contexts], _HIGH),
        (artifacts.ngram3, [c.context3 for c in contexts], _HIGH + 1),
    ):
        row_codes = np.array(codes, np.int64)[owner]
        counts = table.pair_counts(row_codes, cand)
        totals = table.totals(row_codes)
        out[:, col] = np.log1p(counts)
        out[:, col + 2] = np.divide(
            counts, totals, out=np.zeros(len(counts), np.float32), where=totals > 0
        )


def _fill_sequence(out: F32, ctx: StateContext, at: NDArray[np.int64], n_tracks: int) -> None:
    """The sequence model's columns of one state's rows (zeros without a sequence model)."""
    cols = slice(_HIGH + 11, _HIGH + 14)
    if ctx.sequence is None:
        out[:, cols] = 0.0
        return
    logits = ctx.sequence[:n_tracks]
    values = ctx.sequence[at]
    top = float(logits.max())
    log_total = top + float(np.log(np.exp((logits - top).astype(np.float64)).sum()))
    ordered = np.sort(logits)
    out[:, _HIGH + 11] = values
    out[:, _HIGH + 12] = values - np.float32(log_total)
    higher = n_tracks - np.searchsorted(ordered, values, side="right")
    out[:, _HIGH + 13] = np.log1p(higher.astype(np.float32))


def build_rows(state: SessionState, candidate_ids: Sequence[str], artifacts: TrackArtifacts) -> F32:
    """Rows for a state and candidate track ids (tracks unknown to the artifacts get defaults)."""
    ctx = state_context(state, artifacts)
    return rows_for(ctx, artifacts.indices_of(candidate_ids), artifacts)
