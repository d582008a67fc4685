"""PCA fitted on the reference and applied to the query.

The reference's highly variable genes are scaled to zero mean and unit
variance with the reference's own mean and standard deviation (clipped at
+-10, as ``scanpy.pp.scale(max_value=10)``), PCA is fitted on the reference
and the same centring, scaling and projection are applied to the query.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA

REQUIRES: tuple[str, ...] = ()
CHUNK = 50_000


def dense(x) -> np.ndarray:
    """``x`` (dense or sparse) as a dense float32 array."""
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)


def scale_fit(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and standard deviation (population), zeros replaced by 1."""
    mean = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
    sq = x.multiply(x).mean(axis=0) if sp.issparse(x) else np.mean(np.square(x, dtype=np.float64), axis=0)
    std = np.sqrt(np.maximum(np.asarray(sq, dtype=np.float64).ravel() - mean**2, 0))
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def transform_chunks(x, fn, n_out: int) -> np.ndarray:
    """Apply ``fn(block, start)`` to dense row chunks of ``x`` (memory stays one chunk wide)."""
    out = np.empty((x.shape[0], n_out), dtype=np.float32)
    for start in range(0, x.shape[0], CHUNK):
        out[start : start + CHUNK] = fn(dense(x[start : start + CHUNK]), start)
    return out


def fit_scaled_pca(fit_x, n_comps: int):
    """Fit scaling + PCA on ``fit_x``; returns (projection of a dense block, number of components)."""
    mean, std = scale_fit(fit_x)

    def scale(block: np.ndarray) -> np.ndarray:
        return np.clip((block - mean) / std, -10, 10)

    n_comps = min(n_comps, fit_x.shape[1] - 1, fit_x.shape[0] - 1)
    model = PCA(n_components=n_comps, svd_solver="covariance_eigh").fit(scale(dense(fit_x)))
    return (lambda block: model.transform(scale(block))), n_comps


def fit_project(fit_x, targets, n_comps: int) -> list[np.ndarray]:
    """Fit scaling + PCA on ``fit_x`` and project every matrix in ``targets`` (chunked)."""
    project, n_comps = fit_scaled_pca(fit_x, n_comps)
    # every matrix, the reference included, is projected the same way (transform, not fit_transform)
    return [transform_chunks(x, lambda block, _: project(block), n_comps) for x in targets]


def embed(
    reference: ad.AnnData, query: ad.AnnData, genes: Sequence[str], *, seed: int = 0, n_comps: int = 30,
    fit_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed reference and query with a PCA of the scaled reference.

    Exact (``seed`` has no effect) unless ``fit_cells``: scaling and PCA fitted on
    that many reference cells drawn with ``seed`` (:func:`cellquery.backed.fit_rows`;
    the chunked path, :func:`cellquery.backed.pca_backed`, scales with every cell).
    """
    from cellquery.backed import fit_rows

    ref_x, qry_x = reference[:, list(genes)].X, query[:, list(genes)].X
    fit = fit_rows(reference.n_obs, fit_cells, seed)
    ref_emb, qry_emb = fit_project(ref_x if len(fit) == reference.n_obs else ref_x[fit], [ref_x, qry_x], n_comps)
    return ref_emb, qry_emb
