"""Reference self-distances: the scale against which query hit distances are judged."""

from __future__ import annotations

import numpy as np


def reference_self_distances(index, embedding: np.ndarray, *, k: int, seed: int = 0, n_sample: int = 2000) -> np.ndarray:
    """Leave-one-out hit distances of up to ``n_sample`` reference cells: (n_sample, k).

    Row r holds the distances from a sampled reference cell to its k nearest
    *other* reference cells: the hits a query cell would get if it were that
    reference cell. They are searched with the same index that answers the
    queries, so approximate indexes judge queries on their own distance scale.
    A cell's own entry is removed from its hit list wherever it appears
    (compressed indexes need not return it first, or at distance 0).
    """
    rows = sample_rows(len(embedding), n_sample, seed)
    k = min(k, len(embedding) - 1)
    if k < 1:
        return np.full((len(rows), 1), np.inf, dtype=np.float32)
    distances, indices = index.search(embedding[rows], k + 1)
    return self_distances_from_hits(distances, indices, rows, k)


def sample_rows(n: int, n_sample: int = 2000, seed: int = 0) -> np.ndarray:
    """The reference rows whose leave-one-out hits set the distance cut-off (sorted)."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(n_sample, n), replace=False))


def self_distances_from_hits(distances: np.ndarray, indices: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k) distances to the k nearest hits that are not the row itself (inf-padded)."""
    out = np.full((len(rows), k), np.inf, dtype=np.float32)
    for r, (d, i) in enumerate(zip(distances, indices)):
        others = d[(i != rows[r]) & (i >= 0)][:k]
        out[r, : len(others)] = others
    return out
