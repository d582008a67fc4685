"""PCA fitted on a random subsample of reference cells and genes: a PCA with randomness.

Each seed draws ``cell_fraction`` of the reference cells and ``gene_fraction``
of the highly variable genes; scaling and PCA are fitted on that subsample and
every reference and query cell is projected (on the drawn genes). Different
seeds give different, equally plausible embeddings: the models that the
multi-model consensus of :mod:`cellquery.transfer.consensus` combines.
Files written by the chunked preprocess go through :func:`embed_backed`: the
same draws, the drawn cells read by row (at most ``fit_cells``), every cell
projected chunk by chunk.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np

from cellquery.embed.pca import dense, fit_project, fit_scaled_pca

REQUIRES: tuple[str, ...] = ()


def draws(n_obs: int, genes: Sequence[str], seed: int, cell_fraction: float, gene_fraction: float,
          fit_cells: int | None = None) -> tuple[list[str], np.ndarray]:
    """The seed's genes and (sorted) reference cells; at most ``fit_cells`` cells when given."""
    rng = np.random.default_rng(seed)
    genes = list(genes)
    chosen = sorted(rng.choice(len(genes), size=max(2, int(round(gene_fraction * len(genes)))), replace=False))
    size = max(2, int(round(cell_fraction * n_obs)))
    cells = np.sort(rng.choice(n_obs, size=size if fit_cells is None else min(size, int(fit_cells)), replace=False))
    return [genes[j] for j in chosen], cells


def embed(
    reference: ad.AnnData,
    query: ad.AnnData,
    genes: Sequence[str],
    *,
    seed: int = 0,
    n_comps: int = 30,
    cell_fraction: float = 0.5,
    gene_fraction: float = 0.8,
    fit_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed with a PCA fitted on a seed-drawn subsample of reference cells and genes (at most ``fit_cells`` cells)."""
    names, cells = draws(reference.n_obs, genes, seed, cell_fraction, gene_fraction, fit_cells)
    ref_x, qry_x = reference[:, names].X, query[:, names].X
    ref_emb, qry_emb = fit_project(ref_x[cells], [ref_x, qry_x], n_comps)
    return ref_emb, qry_emb


def embed_backed(
    reference_path,
    query_path,
    genes: Sequence[str],
    *,
    seed: int = 0,
    n_comps: int = 30,
    cell_fraction: float = 0.5,
    gene_fraction: float = 0.8,
    fit_cells: int | None = None,
    chunk_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed` on files written by the chunked preprocess: the same draws, at most ``fit_cells``
    (default :data:`cellquery.backed.FIT_CELLS`) cells read by row to fit, then ``chunk_cells`` rows at a
    time projected. While ``cell_fraction`` of the reference is at most ``fit_cells`` cells, the embeddings
    are :func:`embed`'s."""
    from cellquery.backed import CHUNK_CELLS, FIT_CELLS, count_cells, gene_columns, map_chunks, read_rows

    fit_cells = FIT_CELLS if fit_cells is None else int(fit_cells)
    chunk_cells = CHUNK_CELLS if chunk_cells is None else int(chunk_cells)
    names, cells = draws(count_cells(reference_path), genes, seed, cell_fraction, gene_fraction, fit_cells)
    project, n_comps = fit_scaled_pca(read_rows(reference_path, cells, genes=names, layers=False).X, n_comps)
    out = []
    for path, side in ((reference_path, "reference"), (query_path, "query")):
        cols = gene_columns(path, names, side)
        out.append(map_chunks(path, None, lambda _, block: project(dense(block[:, cols])), n_comps, chunk_cells))
    return out[0], out[1]
