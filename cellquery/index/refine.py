"""Exact re-ranking of an index's candidates against reference vectors kept elsewhere (on disk).

An atlas index holds compressed codes (IVF-PQ: 16 bytes per cell + an 8-byte id); its
distances are approximate, which caps recall however many lists are probed (4 x 10^7
cells, 16,384 lists, PQ16: recall@50 0.849 at nprobe 16, 0.868 at 128). faiss's
``IndexRefineFlat`` re-ranks with the full vectors held in memory (128 more bytes per cell
at 32-d). :func:`rerank` takes them from any array instead, typically the reference's
embedding memory-mapped from its ``.npy`` file, so that only the candidates' rows are
read: ``k_factor * k`` rows per query.
"""

from __future__ import annotations

import numpy as np

from cellquery.errors import InputError
from cellquery.transfer.acceptance import exact_distances


def rerank(Q: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int,
           threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of each query's ``candidates`` by exact Euclidean distance.

    ``vectors``: the reference rows the candidate ids point into (an ``np.memmap`` is read
    row by row, never whole). ``candidates``: ``(n, m)`` int ids, ``-1`` for none.
    Returns float32 distances (ascending; equal distances by id) and int64 ids, ``(n, k)``;
    rows with fewer than ``k`` candidates end with ``inf`` / ``-1``. Distances are summed in
    float64 (:func:`cellquery.transfer.acceptance.exact_distances`).
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if candidates.ndim != 2 or candidates.shape[0] != len(Q):
        raise InputError(f"index: rerank needs one row of candidates per query, got {candidates.shape} for {len(Q)}")
    if candidates.size and candidates.max() >= len(vectors):
        raise InputError(f"index: rerank candidate id {int(candidates.max())} is past the {len(vectors)} vectors")
    n, m = candidates.shape
    D = exact_distances(np.asarray(Q), vectors, candidates, threads=threads)
    keys = np.where(candidates >= 0, candidates, np.iinfo(np.int64).max)
    order = np.lexsort((keys, D), axis=1) if m else np.zeros((n, 0), np.int64)
    width = min(k, m)
    I = np.full((n, k), -1, np.int64)
    out = np.full((n, k), np.inf, np.float32)
    I[:, :width] = np.take_along_axis(candidates, order[:, :width], axis=1)
    out[:, :width] = np.take_along_axis(D, order[:, :width], axis=1)  # inf for -1 candidates already
    return out, I
