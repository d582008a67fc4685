"""Reference self-distances: the scale against which query hit distances are judged."""

from __future__ import annotations

import numpy as np


def reference_self_distances(index, embedding: np.ndarray, *, k: int, seed: int = 0, n_sample: int = 2000) -> np.ndarray:
    """Distance from each of up to ``n_sample`` reference cells to its k-th nearest other reference cell.

    Searched with the same index that answers the queries, so approximate
    indexes judge queries on their own distance scale. A cell's own entry is
    removed from its hit list wherever it appears (compressed indexes need not
    return it first, or at distance 0).
    """
    n = len(embedding)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n_sample, n), replace=False))
    k = min(k, n - 1)
    if k < 1:
        return np.full(len(rows), np.inf, dtype=np.float32)
    distances, indices = index.search(embedding[rows], k + 1)
    out = np.empty(len(rows), dtype=np.float32)
    for r, (d, i) in enumerate(zip(distances, indices)):
        others = d[i != rows[r]]
        out[r] = others[k - 1] if len(others) >= k else np.inf
    return out
