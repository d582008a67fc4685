"""PCA fitted on a random subsample of reference cells and genes: a PCA with randomness.

Each seed draws ``cell_fraction`` of the reference cells and ``gene_fraction``
of the highly variable genes; scaling and PCA are fitted on that subsample and
every reference and query cell is projected (on the drawn genes). Different
seeds give different, equally plausible embeddings: the models that the
multi-model consensus of :mod:`cellquery.transfer.consensus` combines.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np

from cellquery.embed.pca import fit_project

REQUIRES: tuple[str, ...] = ()


def embed(
    reference: ad.AnnData,
    query: ad.AnnData,
    genes: Sequence[str],
    *,
    seed: int = 0,
    n_comps: int = 30,
    cell_fraction: float = 0.5,
    gene_fraction: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed with a PCA fitted on a seed-drawn subsample of reference cells and genes."""
    rng = np.random.default_rng(seed)
    genes = list(genes)
    chosen = sorted(rng.choice(len(genes), size=max(2, int(round(gene_fraction * len(genes)))), replace=False))
    cells = np.sort(rng.choice(reference.n_obs, size=max(2, int(round(cell_fraction * reference.n_obs))), replace=False))
    names = [genes[j] for j in chosen]
    ref_x, qry_x = reference[:, names].X, query[:, names].X
    ref_emb, qry_emb = fit_project(ref_x[cells], [ref_x, qry_x], n_comps)
    return ref_emb, qry_emb
