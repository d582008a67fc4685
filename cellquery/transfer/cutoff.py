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
    n = len(embedding)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n_sample, n), replace=False))
    k = min(k, n - 1)
    if k < 1:
        return np.full((len(rows), 1), np.inf, dtype=np.float32)
    distances, indices = index.search(embedding[rows], k + 1)
    out = np.full((len(rows), k), np.inf, dtype=np.float32)
    for r, (d, i) in enumerate(zip(distances, indices)):
        others = d[(i != rows[r]) & (i >= 0)][:k]
        out[r, : len(others)] = others
    return out
