"""Novel-type discovery among rejected query cells (Cell BLAST paper, Fig. 3a-c and Supp. Fig. 14g).

A query cell whose type the reference lacks (a *negative* type) should be
rejected, and the rejected cells of one unseen type should form a group of
their own that an analyst can find. For one run this module

- counts every negative type among the rejected cells and scores it with the
  **enrichment ratio** of Supp. Fig. 14g,

      enrichment(t, S) = (#cells of type t in S / #cells in S) / (#query cells of type t / #query cells),

  for a set S of rejected cells: 1 is the query's own share of t, larger is
  enriched. (The paper's Methods print the two fractions the other way up;
  the figure calls a larger ratio better, which is this orientation.)
- clusters the rejected cells on their embedding with scanpy's Leiden on a
  k-NN graph (Fig. 3b: unsupervised clusters of the rejected cells) and reports every
  cluster's size and composition, and the negative type it is most enriched
  for;
- places the rejected cells in 2-D (the first two principal components of
  their embedding) for the figure.

Clustering settings are fixed here (``N_NEIGHBORS``, ``LEIDEN_RESOLUTION``,
scanpy's defaults); nothing is chosen with the query's labels, which only
score the clusters afterwards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.summary import RUN_COLUMNS

REJECTED = "rejected"
# the `cluster` of the rows that describe all rejected cells of a run together
ALL = "all"
N_NEIGHBORS = 15  # scanpy.pp.neighbors' default
LEIDEN_RESOLUTION = 1.0  # scanpy.tl.leiden's default
MIN_CLUSTER_CELLS = 3  # fewer rejected cells are not clustered
# `clustering` column: how the run's rejected cells were clustered, or why not
LEIDEN = "leiden"
NO_EMBEDDING = "no embedding"
NO_REJECTED = "no rejected cells"
TOO_FEW = f"fewer than {MIN_CLUSTER_CELLS} rejected cells"

NOVEL_TYPE_COLUMNS = RUN_COLUMNS + [
    "cluster", "cluster_cells", "cell_type", "negative", "n_cells", "query_cells", "query_total", "enrichment",
    "top_negative", "clustering",
]
REJECTED_CELL_COLUMNS = RUN_COLUMNS + ["cell", "true_label", "negative", "cluster", "pc1", "pc2"]


def enrichment_ratio(n_type: float, n_subset: float, query_type: float, query_total: float) -> float:
    """(n_type / n_subset) / (query_type / query_total): a type's share of a cell set over its share of the query.

    NaN when the set is empty or the type is absent from the query.
    """
    if n_subset <= 0 or query_type <= 0 or query_total <= 0:
        return float("nan")
    return (n_type / n_subset) / (query_type / query_total)


def type_enrichment(subset_labels, query_labels, negative_types=(), *, all_negative: bool = False) -> pd.DataFrame:
    """Composition of a set of query cells and every type's enrichment ratio.

    ``subset_labels``: true types of the cells in the set (e.g. the rejected
    cells); ``query_labels``: true types of all query cells. One row per type
    present in the set (and, with ``all_negative``, per negative type even if
    absent), sorted by type: ``cell_type``, ``negative``, ``n_cells``,
    ``query_cells``, ``enrichment``, and ``top_negative``, true for the
    negative type with the largest enrichment among those present (ties: the
    first type in sorted order).
    """
    subset = pd.Series(np.asarray(subset_labels, dtype=str))
    query = pd.Series(np.asarray(query_labels, dtype=str))
    negative = set(map(str, negative_types))
    missing = set(subset) - set(query)
    if missing:
        raise InputError(f"novel types: rejected cell type {sorted(missing)[0]!r} is not among the query's types")
    counts = subset.value_counts()
    types = set(counts.index) | (negative & set(query) if all_negative else set())
    in_query = query.value_counts()
    rows = []
    for cell_type in sorted(types):
        n = int(counts.get(cell_type, 0))
        total = int(in_query.get(cell_type, 0))
        rows.append({
            "cell_type": cell_type, "negative": cell_type in negative, "n_cells": n, "query_cells": total,
            "enrichment": enrichment_ratio(n, len(subset), total, len(query)),
        })
    table = pd.DataFrame(rows, columns=["cell_type", "negative", "n_cells", "query_cells", "enrichment"])
    table["top_negative"] = False
    candidates = table[table["negative"] & (table["n_cells"] > 0)]
    if len(candidates):
        table.loc[candidates["enrichment"].idxmax(), "top_negative"] = True  # idxmax: the first of tied maxima
    return table


def leiden_clusters(embedding: np.ndarray, *, seed: int = 0, n_neighbors: int = N_NEIGHBORS,
                    resolution: float = LEIDEN_RESOLUTION) -> np.ndarray:
    """Leiden clusters ("0", "1", ...) of the rows of ``embedding`` (scanpy: k-NN graph, then Leiden).

    scanpy's ``pp.neighbors`` on the embedding itself (``n_neighbors``, at most
    n - 1) with Gaussian-kernel connectivities (``method="gauss"``; the default
    UMAP connectivities compile numba kernels for about 15 s in every fresh
    process, measured, which every run's job would pay), then ``tl.leiden``
    with the igraph implementation (scanpy's recommended ``flavor="igraph"``,
    ``n_iterations=2``, undirected), ``random_state`` ``seed``.
    """
    import anndata as ad
    import scanpy as sc

    from cellquery.neighbors import neighbors  # scanpy's graph, readable from 8,192 cells on

    embedding = np.asarray(embedding, dtype=np.float32)
    n = len(embedding)
    if n < 2:
        return np.zeros(n, dtype=int).astype(str)
    adata = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    adata.obsm["X_emb"] = embedding
    neighbors(adata, use_rep="X_emb", n_neighbors=max(2, min(n_neighbors, n - 1)), method="gauss", random_state=seed)
    sc.tl.leiden(adata, resolution=resolution, flavor="igraph", n_iterations=2, directed=False, random_state=seed)
    return adata.obs["leiden"].astype(str).to_numpy()


def layout_2d(embedding: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates: the first two principal components of ``embedding`` (zeros where there are fewer)."""
    from sklearn.decomposition import PCA

    embedding = np.asarray(embedding, dtype=np.float64)
    out = np.zeros((len(embedding), 2))
    n_comps = min(2, embedding.shape[1], max(len(embedding) - 1, 0))
    if n_comps > 0:
        out[:, :n_comps] = PCA(n_components=n_comps, svd_solver="full").fit_transform(embedding)
    return out


def novel_types(
    predictions: pd.DataFrame,
    reference_labels,
    query_embedding: np.ndarray | None,
    *,
    run: dict,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The novel-type tables of one run: per-type and per-cluster enrichment, and the rejected cells.

    ``predictions``: the run's predictions file (``true_label``, ``prediction``,
    ``cell``), in query order; ``reference_labels``: the reference's cell
    types (a query type not among them is negative); ``query_embedding``: the
    query cells' embedding in the same order, or None / 0 columns for a run
    without one (its rejected cells are then counted but not clustered, and
    ``clustering`` says so).

    Returns ``(types, cells)``. ``types`` (:data:`NOVEL_TYPE_COLUMNS`): rows
    with ``cluster`` ``all`` describe all rejected cells (every negative type,
    even if none of its cells was rejected, and every positive type rejected);
    rows with a Leiden cluster id describe that cluster (every type in it).
    ``cluster_cells`` is the set's size, ``query_cells``/``query_total`` the
    type's and all cells in the query, ``enrichment`` the ratio of
    :func:`enrichment_ratio`, ``top_negative`` marks the negative type the set
    is most enriched for. ``cells`` (:data:`REJECTED_CELL_COLUMNS`): every
    rejected cell with its cluster and 2-D position (NaN without an embedding).
    """
    for column in ("cell", "true_label", "prediction"):
        if column not in predictions:
            raise InputError(f"predictions: column {column!r} is missing")
    true = predictions["true_label"].astype(str).to_numpy()
    rejected = predictions["prediction"].astype(str).to_numpy() == REJECTED
    negative_types = sorted(set(true) - set(map(str, reference_labels)))
    has_embedding = query_embedding is not None and np.asarray(query_embedding).ndim == 2 and query_embedding.shape[1] > 0
    if has_embedding and len(query_embedding) != len(predictions):
        raise InputError(f"novel types: the query embedding has {len(query_embedding)} cells, the predictions {len(predictions)}")
    n_rejected = int(rejected.sum())
    if not has_embedding:
        clustering = NO_EMBEDDING
    elif n_rejected == 0:
        clustering = NO_REJECTED
    elif n_rejected < MIN_CLUSTER_CELLS:
        clustering = TOO_FEW
    else:
        clustering = LEIDEN

    cells = pd.DataFrame({
        "cell": predictions["cell"].astype(str).to_numpy()[rejected], "true_label": true[rejected],
        "negative": np.isin(true[rejected], negative_types), "cluster": "", "pc1": np.nan, "pc2": np.nan,
    })
    if has_embedding and n_rejected:
        points = np.asarray(query_embedding)[rejected]
        cells[["pc1", "pc2"]] = layout_2d(points)
        if clustering == LEIDEN:
            cells["cluster"] = leiden_clusters(points, seed=seed)

    parts = [type_enrichment(true[rejected], true, negative_types, all_negative=True).assign(cluster=ALL, cluster_cells=n_rejected)]
    if clustering == LEIDEN:
        for cluster in sorted(cells["cluster"].unique(), key=int):
            members = cells["true_label"][cells["cluster"] == cluster]
            parts.append(type_enrichment(members, true, negative_types).assign(cluster=cluster, cluster_cells=len(members)))
    types = pd.concat(parts, ignore_index=True).assign(query_total=len(true), clustering=clustering)
    for key in RUN_COLUMNS:
        types[key] = run[key]
        cells[key] = run[key]
    return types[NOVEL_TYPE_COLUMNS], cells[REJECTED_CELL_COLUMNS]
