"""cellquery.neighbors: scanpy's k-NN graph from 8,192 cells on, and CellTypist's majority voting there."""

import importlib.util

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellquery.neighbors import SCANPY_DENSE_BELOW, neighbors


def clustered(n: int, dim: int = 8, n_centres: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(n_centres, dim))
    labels = rng.integers(0, n_centres, n)
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def brute_knn(x: np.ndarray, k: int) -> np.ndarray:
    """Each row's k nearest other rows (exact, squared Euclidean by blocks)."""
    out = np.empty((len(x), k), dtype=np.int64)
    sq = (x.astype(np.float64) ** 2).sum(1)
    for start in range(0, len(x), 2048):
        block = x[start:start + 2048].astype(np.float64)
        d = sq[start:start + 2048, None] + sq[None, :] - 2 * block @ x.T.astype(np.float64)
        d[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        out[start:start + len(block)] = np.argsort(d, axis=1)[:, :k]
    return out


def test_the_graph_at_atlas_sizes_is_the_k_nn_graph():
    n, k = SCANPY_DENSE_BELOW + 300, 10
    x, _ = clustered(n)
    adata = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    adata.obsm["X_emb"] = x
    neighbors(adata, use_rep="X_emb", n_neighbors=k, method="gauss", random_state=0)
    distances = adata.obsp["distances"].tocsr()
    assert distances.shape == (n, n)
    # the distances stored are the Euclidean distances of the pairs
    rows = np.repeat(np.arange(n), np.diff(distances.indptr))
    np.testing.assert_allclose(distances.data, np.linalg.norm(x[rows] - x[distances.indices], axis=1), rtol=1e-4, atol=1e-4)
    # each cell's k - 1 nearest others among them are (nearly all) its exact k - 1 nearest neighbours
    truth = brute_knn(x, k - 1)
    recall = []
    for i in range(n):
        cols, d = distances.indices[distances.indptr[i]:distances.indptr[i + 1]], distances.data[distances.indptr[i]:distances.indptr[i + 1]]
        others = cols[cols != i][np.argsort(d[cols != i], kind="stable")][: k - 1]
        recall.append(len(set(others) & set(truth[i])) / (k - 1))
    assert np.mean(recall) > 0.95
    assert np.isin(adata.obsp["connectivities"].tocsr().indices, np.arange(n)).all() and adata.obsp["connectivities"].nnz >= n * (k - 1)


def test_below_the_switch_scanpy_runs_unchanged():
    import scanpy as sc

    x, _ = clustered(500)
    a, b = (ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(500)])) for _ in range(2))
    a.obsm["X_emb"] = b.obsm["X_emb"] = x
    neighbors(a, use_rep="X_emb", n_neighbors=10, random_state=0)
    sc.pp.neighbors(b, use_rep="X_emb", n_neighbors=10, random_state=0)
    assert (a.obsp["connectivities"] != b.obsp["connectivities"]).nnz == 0


@pytest.mark.skipif(importlib.util.find_spec("celltypist") is None, reason="celltypist is not installed")
def test_celltypist_majority_voting_runs_from_8192_query_cells():
    from cellquery.predictors import celltypist as ct

    rng = np.random.default_rng(1)
    rates = rng.gamma(1.0, 1.0, size=(5, 200))

    def counts(n):
        labels = rng.integers(0, 5, n)
        x = sp.csr_matrix(rng.poisson(rates[labels]).astype(np.float32))
        adata = ad.AnnData(X=x, obs=pd.DataFrame({"t": labels.astype(str)}, index=[f"c{i}" for i in range(n)]),
                           var=pd.DataFrame(index=[f"g{j}" for j in range(200)]))
        adata.layers["counts"] = x
        return adata

    reference, query = counts(600), counts(SCANPY_DENSE_BELOW + 100)
    model = ct.train_model(reference, list(reference.var_names), reference.obs["t"].to_numpy())
    result = ct.annotate(model, query, p_thres=0.5, majority_voting=True).predicted_labels
    assert len(result) == query.n_obs and {"over_clustering", "majority_voting"} <= set(result.columns)
    # CellTypist's vote: every over-cluster carries the most frequent predicted label of its cells
    for _, cells in result.groupby("over_clustering", observed=True):
        assert cells["majority_voting"].nunique() == 1
        assert cells["majority_voting"].iloc[0] == cells["predicted_labels"].value_counts().idxmax()
    # and the cells of one true type fall mostly in clusters voted for one label
    assert (result["majority_voting"].astype(str) == query.obs["t"].to_numpy()).mean() > 0.9
