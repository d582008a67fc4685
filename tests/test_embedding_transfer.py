"""Embedding transfer through M: distance and k-NN preservation against brute force on a tiny case."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellquery.transfer.embedding_transfer import embedding_scores, score_embedding_transfer


def brute_knn(x, k):
    D = np.linalg.norm(x[:, None] - x[None], axis=2)
    np.fill_diagonal(D, np.inf)
    return [set(np.argsort(D[i], kind="stable")[:k]) for i in range(len(x))]


def test_embedding_scores_by_brute_force():
    rng = np.random.default_rng(0)
    own = rng.normal(size=(12, 3))
    transferred = own + rng.normal(scale=0.3, size=own.shape)
    with_nan = np.vstack([transferred, np.full((1, 3), np.nan)])
    own_plus = np.vstack([own, rng.normal(size=(1, 3))])  # the cell without a transfer is left out
    scores = embedding_scores(with_nan, own_plus, k=3)
    spread = np.mean([np.linalg.norm(o - own.mean(axis=0)) for o in own])
    assert scores["emb_distance"] == pytest.approx(np.mean([np.linalg.norm(t - o) for t, o in zip(transferred, own)]) / spread)
    a, b = brute_knn(own, 3), brute_knn(transferred, 3)
    assert scores["emb_knn_preservation"] == pytest.approx(np.mean([len(a[i] & b[i]) / 3 for i in range(12)]))
    exact = embedding_scores(own, own, k=3)
    assert exact == {"emb_distance": 0.0, "emb_knn_preservation": 1.0}


def test_score_embedding_transfer_with_identity_mapping_is_exact():
    # M maps each query cell to the reference cell with its own expression: the transferred PCA is the query's own
    rng = np.random.default_rng(1)
    X = rng.gamma(2.0, size=(20, 6))
    genes = [f"g{j}" for j in range(6)]
    reference = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"r{i}" for i in range(20)]), var=pd.DataFrame(index=genes))
    query = ad.AnnData(X=X[:8].copy(), obs=pd.DataFrame(index=[f"q{i}" for i in range(8)]), var=pd.DataFrame(index=genes))
    M = sp.csr_matrix((np.ones(8), (np.arange(8), np.arange(8))), shape=(8, 20))
    scores = score_embedding_transfer(M, reference, query, genes, reference_cells=reference.obs_names,
                                      query_cells=query.obs_names, n_comps=3, k=3)
    assert scores["emb_distance"] == pytest.approx(0.0, abs=1e-6) and scores["emb_knn_preservation"] == 1.0
