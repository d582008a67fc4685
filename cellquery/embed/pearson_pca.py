"""PCA of analytic Pearson residuals (Lause, Berens & Kobak 2021), reference-fitted.

Residuals of a negative-binomial null model with overdispersion ``theta``:
``z = (x - mu) / sqrt(mu + mu^2 / theta)``, ``mu = n_c * p_g``, clipped at
``+-sqrt(n)``. scanpy's ``experimental.pp.normalize_pearson_residuals``
estimates ``p_g`` from the data it is given and cannot apply a reference's
``p_g`` to a query, so this module computes the residuals itself, with ``p_g``
and the clip taken from the reference, and fits PCA on the reference only.
Needs raw counts (``layers["counts"]``).
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
from sklearn.decomposition import PCA

from cellquery.embed.pca import dense, transform_chunks
from cellquery.peer_tools import require_counts

REQUIRES: tuple[str, ...] = ("counts",)


def embed(
    reference: ad.AnnData,
    query: ad.AnnData,
    genes: Sequence[str],
    *,
    seed: int = 0,
    n_comps: int = 30,
    theta: float = 100.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed reference and query with a PCA of reference-parameterised Pearson residuals."""
    for part, name in ((reference, "reference"), (query, "query")):
        require_counts(part, name, "pearson_pca needs raw counts")
    genes = list(genes)
    ref_counts = reference.layers["counts"]
    ref_total = np.asarray(ref_counts.sum(axis=1), dtype=np.float64).ravel()
    gene_sum = np.asarray(reference[:, genes].layers["counts"].sum(axis=0), dtype=np.float64).ravel()
    p = gene_sum / ref_total.sum()
    clip = np.sqrt(reference.n_obs)

    def residuals(block: np.ndarray, totals: np.ndarray) -> np.ndarray:
        mu = totals[:, None] * p[None, :]
        z = (block - mu) / np.sqrt(mu + mu**2 / theta + 1e-12)
        return np.clip(z, -clip, clip).astype(np.float32)

    n_comps = min(n_comps, len(genes) - 1, reference.n_obs - 1)
    model = PCA(n_components=n_comps, svd_solver="covariance_eigh")
    ref_res = residuals(dense(reference[:, genes].layers["counts"]), ref_total)
    # transform (not fit_transform): the reference is projected exactly as the query is
    ref_emb = model.fit(ref_res).transform(ref_res).astype(np.float32)

    qry_total = np.asarray(query.layers["counts"].sum(axis=1), dtype=np.float64).ravel()
    qry_counts = query[:, genes].layers["counts"]

    def project(block: np.ndarray, start: int) -> np.ndarray:
        return model.transform(residuals(block, qry_total[start : start + len(block)]))

    qry_emb = transform_chunks(qry_counts, project, n_comps)
    return ref_emb, qry_emb
