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
    return rows_for_many([ctx], [tracks], artifacts)


def rows_for_many(
    contexts: Sequence[StateContext], tracks: Sequence[I32], artifacts: TrackArtifacts
) -> F32:
    """The rows of several states' candidates, stacked in order: ``rows_for`` of each, built
    with one array operation per feature group for the whole batch."""
    sizes = np.array([len(t) for t in tracks], dtype=np.int64)
    owner = np.repeat(np.arange(len(contexts)), sizes)  # the state of each row
    cand = np.concatenate(tracks).astype(np.int64) if len(tracks) else np.empty(0, np.int64)
    n = len(cand)
    out = np.empty((n, N_FEATURES), dtype=np.float32)
    if n == 0:
        return out
    out[:, :_S] = np.stack([c.session_features for c in contexts])[owner]
    out[:, _TRACK] = artifacts.track_table[cand]
    # One lookup for five pair kinds: current, previous, last listened, last skipped -> cand,
    # and cand -> current.
    sources = np.array(
        [(c.current, c.previous, c.last_listened, c.last_skipped) for c in contexts],
        dtype=np.int64,
    )[owner]
    current = sources[:, 0]
    keys = np.empty((n, 5), dtype=np.int64)
    keys[:, :4] = sources * artifacts.n_tracks + cand[:, None]
    keys[:, 4] = cand * artifacts.n_tracks + current
    valid = np.empty((n, 5), dtype=bool)
    valid[:, :4] = (sources >= 0) & (cand >= 0)[:, None]
    valid[:, 4] = (cand >= 0) & (current >= 0)
    counts, listened = artifacts.pair_counts_by_key(keys, valid)
    out[:, _PAIRS] = np.log1p(counts)
    cur_count, cur_listened = counts[:, 0], listened[:, 0]
    out_count = np.where(current >= 0, artifacts.out_count[current], np.float32(0.0))
    out[:, _S + 8] = np.log1p(cur_listened)
    out[:, _S + 9] = np.divide(
        cur_count, out_count, out=np.zeros(n, np.float32), where=out_count > 0
    )
    cand_listen = 1.0 - out[:, _S + 1]
    out[:, _S + 10] = (cur_listened + LISTEN_RATE_PRIOR * cand_listen) / (
        cur_count + LISTEN_RATE_PRIOR
    )
    embeddings = artifacts.embedding_table[cand]
    start = 0
    for ctx, size in zip(contexts, sizes.tolist(), strict=True):
        rows = slice(start, start + size)
        out[rows, _S + 11] = np.log1p(ctx.colisten[cand[rows]])
        # float32 x float64 products are computed in float64 and rounded once: unlike a
        # float32 matrix product, a value then does not depend on the batch's size.
        out[rows, _SIMS] = embeddings[rows] @ ctx.directions
        start += size
    return out


def build_rows(state: SessionState, candidate_ids: Sequence[str], artifacts: TrackArtifacts) -> F32:
    """Rows for a state and candidate track ids (tracks unknown to the artifacts get defaults)."""
    ctx = state_context(state, artifacts)
    return rows_for(ctx, artifacts.indices_of(candidate_ids), artifacts)
