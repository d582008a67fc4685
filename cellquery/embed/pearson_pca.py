"""PCA of analytic Pearson residuals (Lause, Berens & Kobak 2021), reference-fitted.

Residuals of a negative-binomial null model with overdispersion ``theta``:
``z = (x - mu) / sqrt(mu + mu^2 / theta)``, ``mu = n_c * p_g``, clipped at
``+-sqrt(n)``. scanpy's ``experimental.pp.normalize_pearson_residuals``
estimates ``p_g`` from the data it is given and cannot apply a reference's
``p_g`` to a query, so this module computes the residuals itself, with ``p_g``
and the clip taken from the reference, and fits PCA on the reference only
(``fit_cells``: on that many reference cells drawn with the seed, the project's
option). Needs raw counts (``layers["counts"]``). Files written by the chunked
preprocess go through :func:`embed_backed`: counts read by row chunks, the PCA
fitted on ``fit_cells`` cells (default :data:`cellquery.backed.FIT_CELLS`).
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
from sklearn.decomposition import PCA

from cellquery.embed.pca import dense, transform_chunks
from cellquery.peer_tools import require_counts

REQUIRES: tuple[str, ...] = ("counts",)


def residuals(block: np.ndarray, totals: np.ndarray, p: np.ndarray, theta: float, clip: float) -> np.ndarray:
    """Pearson residuals of dense counts ``block`` (cells with ``totals``) under gene fractions ``p``."""
    mu = totals[:, None] * p[None, :]
    z = (block - mu) / np.sqrt(mu + mu**2 / theta + 1e-12)
    return np.clip(z, -clip, clip).astype(np.float32)


def embed(
    reference: ad.AnnData,
    query: ad.AnnData,
    genes: Sequence[str],
    *,
    seed: int = 0,
    n_comps: int = 30,
    theta: float = 100.0,
    fit_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed reference and query with a PCA of reference-parameterised Pearson residuals."""
    from cellquery.backed import fit_rows

    for part, name in ((reference, "reference"), (query, "query")):
        require_counts(part, name, "pearson_pca needs raw counts")
    genes = list(genes)
    ref_counts = reference.layers["counts"]
    ref_total = np.asarray(ref_counts.sum(axis=1), dtype=np.float64).ravel()
    gene_sum = np.asarray(reference[:, genes].layers["counts"].sum(axis=0), dtype=np.float64).ravel()
    p = gene_sum / ref_total.sum()
    clip = np.sqrt(reference.n_obs)

    ref_res = residuals(dense(reference[:, genes].layers["counts"]), ref_total, p, theta, clip)
    fit = fit_rows(reference.n_obs, fit_cells, seed)
    n_comps = min(n_comps, len(genes) - 1, len(fit) - 1)
    model = PCA(n_components=n_comps, svd_solver="covariance_eigh")
    # transform (not fit_transform): the reference is projected exactly as the query is
    ref_emb = model.fit(ref_res if len(fit) == reference.n_obs else ref_res[fit]).transform(ref_res).astype(np.float32)

    qry_total = np.asarray(query.layers["counts"].sum(axis=1), dtype=np.float64).ravel()
    qry_counts = query[:, genes].layers["counts"]

    def project(block: np.ndarray, start: int) -> np.ndarray:
        return model.transform(residuals(block, qry_total[start : start + len(block)], p, theta, clip))

    qry_emb = transform_chunks(qry_counts, project, n_comps)
    return ref_emb, qry_emb


def embed_backed(
    reference_path,
    query_path,
    genes: Sequence[str],
    *,
    seed: int = 0,
    n_comps: int = 30,
    theta: float = 100.0,
    fit_cells: int | None = None,
    chunk_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed` on files written by the chunked preprocess, ``chunk_cells`` rows of counts at a time.

    Pass 1 over the reference's counts: every cell's total (all genes) and the
    genes' sums (``p_g``); the PCA is fitted on the residuals of ``fit_cells``
    reference cells (default :data:`cellquery.backed.FIT_CELLS`, drawn with
    ``seed``); then both files are projected chunk by chunk. With ``fit_cells`` at
    least the reference's size the embeddings are :func:`embed`'s.
    """
    from cellquery.backed import CHUNK_CELLS, FIT_CELLS, fit_rows, gene_columns, layer_chunks, map_chunks

    fit_cells = FIT_CELLS if fit_cells is None else int(fit_cells)
    chunk_cells = CHUNK_CELLS if chunk_cells is None else int(chunk_cells)
    ref_cols, qry_cols = gene_columns(reference_path, genes, "reference"), gene_columns(query_path, genes, "query")
    totals, gene_sum = [], np.zeros(len(ref_cols))
    for _, block in layer_chunks(reference_path, "counts", chunk_cells):
        totals.append(np.asarray(block.sum(axis=1), dtype=np.float64).ravel())
        gene_sum += np.asarray(block[:, ref_cols].sum(axis=0), dtype=np.float64).ravel()
    ref_total = np.concatenate(totals)
    n_ref = len(ref_total)
    p = gene_sum / ref_total.sum()
    clip = np.sqrt(n_ref)

    fit = np.zeros(n_ref, dtype=bool)
    fit[fit_rows(n_ref, fit_cells, seed)] = True
    pieces = []
    for start, block in layer_chunks(reference_path, "counts", chunk_cells):
        keep = fit[start : start + block.shape[0]]
        pieces.append(residuals(dense(block[keep][:, ref_cols]), ref_total[start : start + block.shape[0]][keep], p, theta, clip))
    sample = np.concatenate(pieces)
    del pieces
    n_comps = min(n_comps, len(ref_cols) - 1, len(sample) - 1)
    model = PCA(n_components=n_comps, svd_solver="covariance_eigh").fit(sample)
    del sample

    def project(block, cols):  # the block's totals over all genes, then its residuals at the HVGs
        total = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
        return model.transform(residuals(dense(block[:, cols]), total, p, theta, clip))

    return tuple(map_chunks(path, "counts", lambda _, block: project(block, cols), n_comps, chunk_cells)
                 for path, cols in ((reference_path, ref_cols), (query_path, qry_cols)))
