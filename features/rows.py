"""Feature rows: (session state, candidate track) -> one float32 row in :data:`FEATURE_NAMES` order.

The same function builds the training rows (offline, from states folded out of a session's
events) and the rows the stream worker scores (online, from the state folded out of the Redis
session log), so the two cannot drift. Every model stores ``FEATURE_NAMES`` and
``FEATURE_VERSION`` in its metadata; the recommender refuses a model built for other features.

Bump :data:`FEATURE_VERSION` whenever a feature's meaning, order or computation changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from features.artifacts import F32, I32, TrackArtifacts
from features.context import StateContext, state_context
from features.session import SessionState

FEATURE_VERSION: Final = "1"

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
)
FEATURE_NAMES: Final[tuple[str, ...]] = SESSION_FEATURES + CANDIDATE_FEATURES
N_FEATURES: Final = len(FEATURE_NAMES)
#: Pseudo-transitions of the candidate's own listen rate in ``tr_current_listen_rate``.
LISTEN_RATE_PRIOR: Final = 2.0

_S: Final = len(SESSION_FEATURES)
_TRACK: Final = slice(_S, _S + 3)
_PAIRS: Final = slice(_S + 3, _S + 8)
_SIMS: Final = slice(_S + 12, _S + 16)


def rows_for(ctx: StateContext, tracks: I32, artifacts: TrackArtifacts) -> F32:
    """Rows ``[len(tracks), N_FEATURES]`` for candidate track indices (-1: unknown track)."""
    n = len(tracks)
    out = np.empty((n, N_FEATURES), dtype=np.float32)
    out[:, :_S] = ctx.session_features
    out[:, _TRACK] = artifacts.track_table[tracks]
    # One lookup for five pair kinds: current, previous, last listened, last skipped -> cand,
    # and cand -> current.
    cand = tracks.astype(np.int64)
    sources = np.array(
        [ctx.current, ctx.previous, ctx.last_listened, ctx.last_skipped], dtype=np.int64
    )
    src = np.concatenate([np.repeat(sources, n), cand])
    dst = np.concatenate([np.tile(cand, 4), np.full(n, ctx.current, np.int64)])
    counts, listened = artifacts.pair_counts(src, dst)
    counts = counts.reshape(5, n)
    out[:, _PAIRS] = np.log1p(counts).T
    cur_count, cur_listened = counts[0], listened[:n]
    out_count = artifacts.out_count[ctx.current] if ctx.current >= 0 else 0.0
    cand_listen = 1.0 - out[:, _S + 1]
    out[:, _S + 8] = np.log1p(cur_listened)
    out[:, _S + 9] = cur_count / out_count if out_count > 0 else 0.0
    out[:, _S + 10] = (cur_listened + LISTEN_RATE_PRIOR * cand_listen) / (
        cur_count + LISTEN_RATE_PRIOR
    )
    out[:, _S + 11] = np.log1p(ctx.colisten[tracks])
    # float32 x float64 products are computed in float64 and rounded once: unlike a float32
    # matrix product, a row's values then do not depend on how many rows are in the batch.
    out[:, _SIMS] = artifacts.embedding_table[tracks] @ ctx.directions
    return out


def build_rows(state: SessionState, candidate_ids: Sequence[str], artifacts: TrackArtifacts) -> F32:
    """Rows for a state and candidate track ids (tracks unknown to the artifacts get defaults)."""
    ctx = state_context(state, artifacts)
    return rows_for(ctx, artifacts.indices_of(candidate_ids), artifacts)
