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


def _dense(x) -> np.ndarray:
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
        out[start : start + CHUNK] = fn(_dense(x[start : start + CHUNK]), start)
    return out


def embed(
    reference: ad.AnnData, query: ad.AnnData, genes: Sequence[str], *, seed: int = 0, n_comps: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Embed reference and query with a PCA of the scaled reference."""
    ref_x, qry_x = reference[:, list(genes)].X, query[:, list(genes)].X
    mean, std = scale_fit(ref_x)

    def scale(block: np.ndarray) -> np.ndarray:
        return np.clip((block - mean) / std, -10, 10)

    n_comps = min(n_comps, len(genes) - 1, reference.n_obs - 1)
    model = PCA(n_components=n_comps, svd_solver="covariance_eigh")
    scaled = scale(_dense(ref_x))
    # transform (not fit_transform): the reference is projected exactly as the query is
    ref_emb = model.fit(scaled).transform(scaled).astype(np.float32)
    qry_emb = transform_chunks(qry_x, lambda block, _: model.transform(scale(block)), n_comps)
    return ref_emb, qry_emb
