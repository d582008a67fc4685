"""Spatial embeddings without training: neighbourhood-averaged expression (one graph-convolution step).

``neighbourhood_average(x, A)`` = ``D^-1 (A + I) x`` (``mean``: every cell's own
profile averaged with its radius neighbours'), or the graph convolution's
symmetric normalisation ``D^-1/2 (A + I) D^-1/2 x`` (``sym``, Kipf & Welling),
with ``D`` the degree of ``A + I``. Sparse matrix products (scipy), so a
10^6-cell section costs one pass over its edges.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cellquery.errors import InputError

NORMALISATIONS = ("mean", "sym")


def normalised_adjacency(adjacency: sp.spmatrix, kind: str = "mean", self_loops: bool = True) -> sp.csr_matrix:
    """``D^-1 (A + I)`` (mean) or ``D^-1/2 (A + I) D^-1/2`` (sym); ``self_loops=False`` leaves out I."""
    if kind not in NORMALISATIONS:
        raise InputError(f"normalisation must be one of {NORMALISATIONS}, got {kind!r}")
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1]:
        raise InputError(f"adjacency must be square, got shape {a.shape}")
    if self_loops:
        a = a + sp.identity(a.shape[0], format="csr")
    degree = np.asarray(a.sum(axis=1)).ravel()
    inv = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    if kind == "mean":
        return (sp.diags(inv) @ a).tocsr()
    root = np.sqrt(inv)
    return (sp.diags(root) @ a @ sp.diags(root)).tocsr()


def neighbourhood_average(x, adjacency: sp.spmatrix, kind: str = "mean", self_loops: bool = True) -> np.ndarray:
    """One graph-convolution step without weights: the normalised adjacency times ``x`` (dense cells x features)."""
    propagate = normalised_adjacency(adjacency, kind, self_loops)
    if propagate.shape[0] != x.shape[0]:
        raise InputError(f"adjacency has {propagate.shape[0]} cells, expression has {x.shape[0]}")
    out = propagate @ x
    return np.asarray(out.toarray() if sp.issparse(out) else out)
