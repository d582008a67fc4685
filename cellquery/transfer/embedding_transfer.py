"""Embedding transfer through the mapping matrix M, scored against the query's own embedding.

CellMapper maps dense reference embeddings (``.obsm``, e.g. a reference UMAP
or a second latent space) into the query as ``M . E_reference``. To score such
a transfer the query needs the same embedding computed for itself: here the
transferred embedding is the project's PCA (:func:`cellquery.embed.pca.embed`:
fitted on the reference's HVGs, the query projected into it, ``n_comps``
components), a second latent for every method whose hits built M (for the
``pca`` method it is its own space). Scores over the query cells with a
transfer (a row of M with weight):

* ``emb_distance``: mean Euclidean distance between a cell's transferred and
  own coordinates, divided by the query's mean distance to its centroid (0 =
  exact; 1 = as far off as the query's spread);
* ``emb_knn_preservation``: mean over cells of the fraction of its ``k``
  nearest query cells in its own embedding that are also among its ``k``
  nearest in the transferred one (exact k-NN, sklearn; 1 = neighbourhoods kept).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cellquery.transfer.expression import transfer_expression

N_COMPS = 10
K = 15


def embedding_scores(transferred: np.ndarray, own: np.ndarray, k: int = K) -> dict[str, float]:
    """``emb_distance`` and ``emb_knn_preservation`` (module docstring); rows of ``transferred`` with NaN are left out."""
    from sklearn.neighbors import NearestNeighbors

    transferred, own = np.asarray(transferred, dtype=np.float64), np.asarray(own, dtype=np.float64)
    made = ~np.isnan(transferred).any(axis=1)
    transferred, own = transferred[made], own[made]
    if len(own) < 2:
        return {"emb_distance": float("nan"), "emb_knn_preservation": float("nan")}
    spread = np.mean(np.linalg.norm(own - own.mean(axis=0), axis=1))
    distance = float(np.mean(np.linalg.norm(transferred - own, axis=1)) / spread) if spread > 0 else float("nan")
    k = min(k, len(own) - 1)

    def neighbours(x):  # each cell's k nearest other cells
        return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]

    a, b = neighbours(own), neighbours(transferred)
    kept = np.mean([len(np.intersect1d(a[i], b[i])) / k for i in range(len(a))])
    return {"emb_distance": distance, "emb_knn_preservation": float(kept)}


def score_embedding_transfer(M: sp.spmatrix, reference, query, genes, *, reference_cells, query_cells,
                             n_comps: int = N_COMPS, k: int = K) -> dict[str, float]:
    """The project's PCA of ``genes`` transferred through M (cells in M's order) and scored against the query's own."""
    import pandas as pd

    from cellquery.embed import pca

    genes = [g for g in genes if g in set(reference.var_names)]
    n_comps = min(n_comps, len(genes), reference.n_obs - 1)
    reference_pca, query_pca = pca.embed(reference, query, genes, n_comps=n_comps)
    reference_rows = pd.Index(reference.obs_names).get_indexer(list(reference_cells))
    query_rows = pd.Index(query.obs_names).get_indexer(list(query_cells))
    transferred = transfer_expression(M, reference_pca[reference_rows])
    return embedding_scores(transferred, query_pca[query_rows], k=k)
