"""Cell-type nearest-neighbour mean average precision (MAP).

The Cell BLAST paper (Cao et al. 2020), Methods, "Benchmarking dimension reduction":
AP = Σ_k 1[y = y_k] · (Σ_{k' ≤ k} 1[y = y_k'] / k) / Σ_k 1[y = y_k]  (0 if no y_k = y),
MAP = (1/N) Σ_i AP(i), with K = 1 % of the cells and Euclidean neighbours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.metrics._checks import as_embedding, as_labels, check_frac, same_length
from cellquery.metrics._knn import iter_exact_knn


def _average_precision(match: np.ndarray) -> np.ndarray:
    """Per-row AP of a boolean (n, K) hit matrix (nearest first)."""
    match = match.astype(np.float64)
    hits = match.sum(axis=1)
    precision = np.cumsum(match, axis=1) / np.arange(1, match.shape[1] + 1)
    num = (match * precision).sum(axis=1)
    return np.divide(num, hits, out=np.zeros_like(num), where=hits > 0)


def mean_average_precision(true_labels, neighbor_labels) -> float:
    """Mean average precision of neighbour labels.

    Parameters
    ----------
    true_labels
        (n,) label of each cell.
    neighbor_labels
        (n, K) labels of each cell's neighbours, nearest first.

    Returns
    -------
    float
        MAP in [0, 1]; a cell none of whose neighbours shares its label has AP 0.
    """
    y = as_labels(true_labels, "true_labels")
    nb = np.asarray(neighbor_labels, dtype=object)
    if nb.ndim != 2:
        raise InputError(f"neighbor_labels: expected a 2-D (cells x K) array, got shape {nb.shape}")
    same_length(len(y), nb, "neighbor_labels")
    if nb.shape[1] < 1 or len(y) == 0:
        raise InputError(f"neighbor_labels: needs at least one cell and one neighbour, got shape {nb.shape}")
    if pd.isna(nb).any():
        raise InputError("neighbor_labels: contains missing values (NaN/None)")
    return float(_average_precision(nb == y[:, None]).mean())


def map_from_embedding(X, labels, k_frac: float = 0.01) -> float:
    """MAP of exact Euclidean neighbours in an embedding.

    Parameters
    ----------
    X
        (n, d) embedding.
    labels
        (n,) cell types.
    k_frac
        K = round(k_frac * n), at least 1 (at most n - 1); the paper uses 1 %.

    Returns
    -------
    float
        MAP over all cells; each cell's own entry is excluded from its neighbours.

    Notes
    -----
    Exact search (faiss flat index, float64 re-ranking, ties broken by lower cell
    index), streamed in query chunks: memory O(chunk * K), not O(n * K).
    """
    X = as_embedding(X)
    y = as_labels(labels, "labels")
    same_length(X.shape[0], y, "labels")
    n = X.shape[0]
    if n < 2:
        raise InputError(f"X: MAP needs at least 2 cells, got {n}")
    k = min(n - 1, max(1, int(round(check_frac(k_frac) * n))))
    codes, _ = pd.factorize(y)
    total = 0.0
    for start, idx, _ in iter_exact_knn(X, k, exclude_self=True):
        own = codes[start : start + len(idx)]
        total += _average_precision(codes[idx] == own[:, None]).sum()
    return float(total / n)
