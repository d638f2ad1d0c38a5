"""Track artifacts: what the catalogue looks like, learned from training sessions only.

* popularity (play counts) and smoothed skip rates per track;
* co-listen transitions: how often track ``b`` was played right after track ``a``, and how often
  ``b`` was then listened through (a CSR matrix with two aligned value arrays);
* track embeddings: truncated SVD of the positive PMI matrix of within-session co-occurrence
  (window of :data:`COOC_WINDOW` plays), L2-normalised rows;
* skip-aware transitions: of the ``a -> b`` transitions, how many followed a SKIPPED ``a``;
* higher-order transitions (:mod:`features.ngrams`): what followed the last 2 and 3 tracks;
* the training sessions' distinct tracks, for the session kNN score (:mod:`features.neighbours`).

Everything is a numpy array indexed by a dense track index (tracks sorted by id), so candidate
generation and feature rows are vectorised. :meth:`TrackArtifacts.save` / :meth:`load` write
``artifacts.npz`` and ``artifacts.json`` into a model version folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.linalg import svds

from features.neighbours import (
    SessionIndex,
    session_tracks,
    transition_probabilities,
)
from features.ngrams import NgramTable, fit_ngrams

ARTIFACTS_NPZ: Final = "artifacts.npz"
ARTIFACTS_JSON: Final = "artifacts.json"
ARTIFACTS_FORMAT: Final = 2
EMBEDDING_DIM: Final = 32
COOC_WINDOW: Final = 5
#: Pseudo-plays of the global skip rate mixed into each track's skip rate.
SKIP_PRIOR_PLAYS: Final = 10.0
#: Pseudo-transitions of the successor's own listen rate mixed into a transition's listen rate.
TRANSITION_PRIOR: Final = 2.0

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]


class PlayLike(Protocol):
    @property
    def track_id(self) -> str: ...
    @property
    def outcome(self) -> str: ...


class SessionLike(Protocol):
    @property
    def plays(self) -> Sequence[PlayLike]: ...


@dataclass(frozen=True, eq=False)
class TrackArtifacts:
    """Per-track arrays (length T) and the transition matrix, indexed by track index.

    Derived lookup tables (built on load, not stored) carry one extra row at index -1, so an
    unknown track (index -1) reads neutral defaults without branching.
    """

    track_ids: tuple[str, ...]
    plays: F32  # play count
    skip_rate: F32  # smoothed share of plays skipped (early or late)
    early_skip_rate: F32  # smoothed share of plays skipped early
    trans_indptr: I64  # CSR rows: a -> its successors b
    trans_indices: I32  # sorted within each row
    trans_count: F32  # times b followed a
    trans_listened: F32  # ... and b was listened through
    out_count: F32  # transitions out of a (row sums)
    embeddings: F32  # [T, D], unit rows (zero rows for tracks without co-occurrence)
    trans_after_skip: F32  # times b followed a and a was skipped (early or late)
    ngram2_keys: I64  # (a, b) -> c pair keys, sorted (features.ngrams)
    ngram2_count: F32
    ngram3_keys: I64  # (a, b, c) -> d
    ngram3_count: F32
    session_indptr: I64  # CSR: each training session's distinct tracks, sorted
    session_indices: I32
    params: dict[str, object] = field(default_factory=dict)
    index: dict[str, int] = field(init=False)
    popular: I32 = field(init=False)  # track indices, most played first (ties by id)
    trans_keys: I64 = field(init=False)  # sorted a * T + b of every transition
    track_table: F32 = field(init=False)  # [T + 1, 3] log1p(plays), skip rate, early skip rate
    embedding_table: F32 = field(init=False)  # [T + 1, D], last row zeros
    #: ``embedding_table`` in float64 (exact), for sums and products computed in float64
    embedding_table64: NDArray[np.float64] = field(init=False)
    #: The transposed transitions, b -> its predecessors a (CSR, sorted within each row), with
    #: the counts of a -> b aligned.
    pred_indptr: I64 = field(init=False)
    pred_indices: I32 = field(init=False)
    pred_count: F32 = field(init=False)
    #: log1p of ``trans_count``, ``pred_count`` (the feature values, computed once)
    trans_log_count: F32 = field(init=False)
    pred_log_count: F32 = field(init=False)
    ngram2: NgramTable = field(init=False)
    ngram3: NgramTable = field(init=False)
    sessions_index: SessionIndex = field(init=False)
    #: [T, T] sparse count(a -> b) / transitions out of a
    trans_probability: sp.csr_matrix = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.track_ids)
        setattr_ = object.__setattr__
        setattr_(self, "index", {t: i for i, t in enumerate(self.track_ids)})
        # Track ids are sorted, so the stable sort breaks popularity ties by id.
        setattr_(self, "popular", np.argsort(-self.plays, kind="stable").astype(np.int32))
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.trans_indptr))
        setattr_(self, "trans_keys", rows * n + self.trans_indices)
        prior = self.global_skip_rate
        table = np.column_stack([np.log1p(self.plays), self.skip_rate, self.early_skip_rate])
        default = np.array([[0.0, prior, prior]])
        setattr_(self, "track_table", np.vstack([table, default]).astype(np.float32))
        zero = np.zeros((1, self.embeddings.shape[1]), np.float32)
        setattr_(self, "embedding_table", np.vstack([self.embeddings, zero]).astype(np.float32))
        # C order: gathering rows of the (F-ordered) SVD output is many times slower.
        table64 = np.ascontiguousarray(self.embedding_table, dtype=np.float64)
        setattr_(self, "embedding_table64", table64)
        # Stable by target over the source-ordered entries: each predecessor row is sorted.
        by_target = np.argsort(self.trans_indices, kind="stable")
        pred_indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.trans_indices, minlength=n), out=pred_indptr[1:])
        setattr_(self, "pred_indptr", pred_indptr)
        setattr_(self, "pred_indices", rows[by_target].astype(np.int32))
        setattr_(self, "pred_count", self.trans_count[by_target])
        setattr_(self, "trans_log_count", np.log1p(self.trans_count))
        setattr_(self, "pred_log_count", np.log1p(self.pred_count))
        setattr_(self, "ngram2", NgramTable(2, n, self.ngram2_keys, self.ngram2_count))
        setattr_(self, "ngram3", NgramTable(3, n, self.ngram3_keys, self.ngram3_count))
        index = SessionIndex.of(self.session_indptr, self.session_indices, n)
        setattr_(self, "sessions_index", index)
        probability = transition_probabilities(
            self.trans_indptr, self.trans_indices, self.trans_count, self.out_count
        )
        setattr_(self, "trans_probability", probability)

    @property
    def n_tracks(self) -> int:
        return len(self.track_ids)

    @property
    def global_skip_rate(self) -> float:
        """Share of training plays skipped (the prior of the per-track skip rates)."""
        value = self.params.get("global_skip_rate", 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    def indices_of(self, track_ids: Sequence[str]) -> I32:
        """Track indices, -1 for tracks the artifacts do not know."""
        get = self.index.get
        return np.fromiter((get(t, -1) for t in track_ids), dtype=np.int32, count=len(track_ids))

    def pair_counts(self, sources: I64, targets: I64) -> tuple[F32, F32]:
        """(count, listened count) of ``source -> target`` for aligned index arrays; 0 where
        either index is -1 or the pair never occurred."""
        keys = sources * len(self.track_ids) + targets
        return self.pair_counts_by_key(keys, (sources >= 0) & (targets >= 0))

    def pair_counts_by_key(self, keys: I64, valid: NDArray[np.bool_]) -> tuple[F32, F32]:
        """(count, listened count) for pair keys ``source * T + target``; 0 where not valid."""
        count = np.zeros(keys.shape, dtype=np.float32)
        listened = np.zeros(keys.shape, dtype=np.float32)
        if len(self.trans_keys) == 0:
            return count, listened
        pos = np.minimum(np.searchsorted(self.trans_keys, keys), len(self.trans_keys) - 1)
        hit = (self.trans_keys[pos] == keys) & valid
        count[hit] = self.trans_count[pos[hit]]
        listened[hit] = self.trans_listened[pos[hit]]
        return count, listened

    def successors(self, source: int) -> tuple[I32, F32]:
        """The tracks that followed ``source`` in training, with their counts."""
        if source < 0:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        lo, hi = self.trans_indptr[source], self.trans_indptr[source + 1]
        return self.trans_indices[lo:hi], self.trans_count[lo:hi]

    def transition_rows(self, sources: I64, *, reverse: bool = False) -> tuple[I64, I64]:
        """The transitions out of each of the (known, >= 0) ``sources``, or into it with
        ``reverse``, in one pass.

        Returns ``(owner, entry)``: for each transition, the position in ``sources`` it belongs
        to (ascending) and its entry in the CSR arrays (``trans_indices`` / ``trans_count`` /
        ``trans_listened``; ``pred_indices`` / ``pred_count`` with ``reverse``), in row order.
        """
        indptr = self.pred_indptr if reverse else self.trans_indptr
        lo = indptr[sources]
        lengths = indptr[sources + 1] - lo
        owner = np.repeat(np.arange(len(sources)), lengths)
        # entry = lo of its row + its rank within the row
        entry = np.arange(len(owner)) + (lo - np.cumsum(lengths) + lengths)[owner]
        return owner, entry

    def has_transition(self, source_id: str, target_id: str) -> bool:
        a, b = self.index.get(source_id, -1), self.index.get(target_id, -1)
        count, _ = self.pair_counts(np.array([a], np.int64), np.array([b], np.int64))
        return bool(count[0] > 0)

    # --- persistence -----------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        np.savez(
            folder / ARTIFACTS_NPZ,
            plays=self.plays,
            skip_rate=self.skip_rate,
            early_skip_rate=self.early_skip_rate,
            trans_indptr=self.trans_indptr,
            trans_indices=self.trans_indices,
            trans_count=self.trans_count,
            trans_listened=self.trans_listened,
            out_count=self.out_count,
            embeddings=self.embeddings,
            trans_after_skip=self.trans_after_skip,
            ngram2_keys=self.ngram2_keys,
            ngram2_count=self.ngram2_count,
            ngram3_keys=self.ngram3_keys,
            ngram3_count=self.ngram3_count,
            session_indptr=self.session_indptr,
            session_indices=self.session_indices,
        )
        meta = {"format": ARTIFACTS_FORMAT, "params": self.params, "track_ids": self.track_ids}
        (folder / ARTIFACTS_JSON).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> TrackArtifacts:
        meta = json.loads((folder / ARTIFACTS_JSON).read_text(encoding="utf-8"))
        if meta.get("format") != ARTIFACTS_FORMAT:
            raise ValueError(f"{folder}: artifacts format {meta.get('format')!r} not supported")
        with np.load(folder / ARTIFACTS_NPZ) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(track_ids=tuple(meta["track_ids"]), params=meta["params"], **arrays)


def fit_artifacts(
    sessions: Sequence[SessionLike], *, embedding_dim: int = EMBEDDING_DIM, seed: int = 7
) -> TrackArtifacts:
    """Learn the artifacts from these (training) sessions."""
    track_ids = tuple(sorted({p.track_id for s in sessions for p in s.plays}))
    index = {t: i for i, t in enumerate(track_ids)}
    n = len(track_ids)
    seqs = [np.fromiter((index[p.track_id] for p in s.plays), np.int32) for s in sessions]
    listened_seqs = [
        np.fromiter((p.outcome == "listened" for p in s.plays), bool) for s in sessions
    ]
    early_seqs = [np.fromiter((p.outcome == "skip_early" for p in s.plays), bool) for s in sessions]
    flat = np.concatenate(seqs) if seqs else np.empty(0, np.int32)
    listened = np.concatenate(listened_seqs) if seqs else np.empty(0, bool)
    early = np.concatenate(early_seqs) if seqs else np.empty(0, bool)

    plays = np.bincount(flat, minlength=n).astype(np.float64)
    skips = plays - np.bincount(flat, weights=listened, minlength=n)
    early_skips = np.bincount(flat, weights=early, minlength=n)
    total = max(float(plays.sum()), 1.0)
    prior_skip = float(skips.sum()) / total
    prior_early = float(early_skips.sum()) / total
    skip_rate = (skips + SKIP_PRIOR_PLAYS * prior_skip) / (plays + SKIP_PRIOR_PLAYS)
    early_rate = (early_skips + SKIP_PRIOR_PLAYS * prior_early) / (plays + SKIP_PRIOR_PLAYS)

    trans = _transitions(seqs, listened_seqs, n)
    after_skip = _after_skip(seqs, listened_seqs, n, trans[0], trans[1])
    embeddings = _embeddings(seqs, n, embedding_dim, seed)
    ngram2, ngram3 = fit_ngrams(seqs, n, 2), fit_ngrams(seqs, n, 3)
    session_indptr, session_indices = session_tracks(seqs)
    return TrackArtifacts(
        track_ids=track_ids,
        plays=plays.astype(np.float32),
        skip_rate=skip_rate.astype(np.float32),
        early_skip_rate=early_rate.astype(np.float32),
        trans_indptr=trans[0],
        trans_indices=trans[1],
        trans_count=trans[2],
        trans_listened=trans[3],
        out_count=trans[4],
        embeddings=embeddings,
        trans_after_skip=after_skip,
        ngram2_keys=ngram2.keys,
        ngram2_count=ngram2.counts,
        ngram3_keys=ngram3.keys,
        ngram3_count=ngram3.counts,
        session_indptr=session_indptr,
        session_indices=session_indices,
        params={
            "sessions": len(sessions),
            "plays": int(total),
            "embedding_dim": int(embeddings.shape[1]),
            "cooc_window": COOC_WINDOW,
            "skip_prior_plays": SKIP_PRIOR_PLAYS,
            "global_skip_rate": prior_skip,
            "seed": seed,
        },
    )


def _transitions(
    seqs: list[I32], listened_seqs: list[NDArray[np.bool_]], n: int
) -> tuple[I64, I32, F32, F32, F32]:
    """CSR of ``a -> b`` counts (and listened-``b`` counts), and the row sums."""
    src = np.concatenate([s[:-1] for s in seqs]).astype(np.int64) if seqs else np.empty(0, np.int64)
    dst = np.concatenate([s[1:] for s in seqs]).astype(np.int64) if seqs else np.empty(0, np.int64)
    lis = np.concatenate([x[1:] for x in listened_seqs]) if seqs else np.empty(0, bool)
    indptr, indices, count, listened = _csr(src, dst, lis, n)
    out = np.bincount(src, minlength=n).astype(np.float32)
    return indptr, indices, count, listened, out


def _after_skip(
    seqs: list[I32], listened_seqs: list[NDArray[np.bool_]], n: int, indptr: I64, indices: I32
) -> F32:
    """Per CSR entry of ``a -> b``: how many of those transitions followed a skipped ``a``."""
    if not seqs:
        return np.zeros(len(indices), np.float32)
    src = np.concatenate([s[:-1] for s in seqs]).astype(np.int64)
    dst = np.concatenate([s[1:] for s in seqs]).astype(np.int64)
    skipped = ~np.concatenate([x[:-1] for x in listened_seqs])
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    keys = rows * n + indices
    at = np.searchsorted(keys, (src * n + dst)[skipped])
    return np.bincount(at, minlength=len(keys)).astype(np.float32)


def _csr(rows: I64, cols: I64, flags: NDArray[np.bool_], n: int) -> tuple[I64, I32, F32, F32]:
    """CSR (indptr, sorted indices, pair counts, flagged pair counts) of the (row, col) pairs."""
    keys, inverse = np.unique(rows * n + cols, return_inverse=True)
    count = np.bincount(inverse, minlength=len(keys))
    flagged = np.bincount(inverse, weights=flags, minlength=len(keys))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n, minlength=n), out=indptr[1:])
    return (
        indptr,
        (keys % n).astype(np.int32),
        count.astype(np.float32),
        flagged.astype(np.float32),
    )


def _embeddings(seqs: list[I32], n: int, dim: int, seed: int) -> F32:
    """Unit rows of U * sqrt(S) from a truncated SVD of the PPMI co-occurrence matrix."""
    rows, cols = [], []
    for s in seqs:
        for d in range(1, COOC_WINDOW + 1):
            rows += [s[:-d], s[d:]]
            cols += [s[d:], s[:-d]]
    k = min(dim, n - 2)
    if not rows or k < 1:
        return np.zeros((n, max(k, 1)), dtype=np.float32)
    r, c = np.concatenate(rows), np.concatenate(cols)
    cooc = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)).tocsr()
    cooc.sum_duplicates()
    coo = cooc.tocoo()
    row_sums = np.asarray(cooc.sum(axis=1)).ravel()
    pmi = np.log(coo.data * cooc.sum() / (row_sums[coo.row] * row_sums[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    v0 = np.random.default_rng(seed).standard_normal(n)
    u, s, _ = svds(ppmi, k=k, v0=v0)
    order = np.argsort(-s)
    emb = u[:, order] * np.sqrt(s[order])
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit: F32 = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0).astype(np.float32)
    return unit
