"""Kernel voting: rows of CellMapper's mapping matrix M, so that Y_query = M . Y_reference.

For query cell i and significant hit j at distance d_ij the Gaussian kernel is
``exp(-d_ij^2 / (2 sigma_i^2))`` with an adaptive bandwidth ``sigma_i``, the
distance to the query's ``bandwidth_rank``-th hit (its last significant hit by
default); each row is normalised to sum 1 (CellMapper, quadbio/cellmapper:
"k-NN graph + kernel gives a mapping matrix M"). Summed per label the row is
``M . onehot(Y_reference)``; :func:`mapping_matrix` builds M itself (sparse,
n_query x n_reference) for continuous values and embeddings. The mapping is
written here because CellMapper builds its own neighbour graph and cannot take
the hits of the project's indexes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def weights(
    codes: np.ndarray, mask: np.ndarray, distances: np.ndarray, label_frequency: np.ndarray, bandwidth_rank: int | None = None
) -> np.ndarray:
    """Row-normalised Gaussian kernel weights of the significant hits.

    Uncounted hits enter the arithmetic as distance 0 and are zeroed after the
    exponential (no NaN placeholders, ``nanmax`` or ``nan_to_num`` passes: 10^4 x 30
    hits 8.7 -> 5.7 ms, the same weights).
    """
    d = np.where(mask, distances, 0.0).astype(np.float64, copy=False)
    n_hits = mask.sum(axis=1)
    if bandwidth_rank is None:
        sigma = np.where(mask, d, -np.inf).max(axis=1, initial=-np.inf)
    else:
        sigma = np.sort(np.where(mask, d, np.inf), axis=1)[:, min(bandwidth_rank, d.shape[1]) - 1]
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)
    w = np.exp(-(d**2) / (2 * sigma[:, None] ** 2))
    w[~mask] = 0.0
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=(total > 0) & (n_hits[:, None] > 0))


def mapping_matrix(indices: np.ndarray, w: np.ndarray, n_reference: int) -> sp.csr_matrix:
    """Sparse M (n_query x n_reference) from hit indices and row-normalised weights."""
    rows = np.broadcast_to(np.arange(len(indices))[:, None], indices.shape)
    keep = (w > 0) & (indices >= 0)
    return sp.csr_matrix((w[keep], (rows[keep], indices[keep])), shape=(len(indices), n_reference))
