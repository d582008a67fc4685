"""Preprocessing, HVG selection on the reference and reference-fitted embeddings."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from cellquery.embed import EMBEDDINGS, embed_group
from cellquery.errors import InputError
from cellquery.hvg import select_hvg
from cellquery.preprocess import prepare_group
from cellquery.registry import skip_reason


def counts(n=120, genes=200, seed=0, values="counts", prefix="g"):
    rng = np.random.default_rng(seed)
    mean = rng.gamma(0.6, 2.0, size=genes)
    types = np.repeat(["A", "B"], n // 2)
    mean_b = mean * np.where(np.arange(genes) < 20, 6.0, 1.0)
    lam = np.where((types == "B")[:, None], mean_b, mean) * rng.lognormal(0, 0.3, size=(n, 1))
    x = rng.poisson(lam).astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": types, "batch": np.tile(["b1", "b2", "b3", "b4"], n // 4)}, index=[f"{seed}_{i}" for i in range(n)]
    )
    adata = ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"{prefix}{j}" for j in range(genes)]))
    adata.uns["values"] = values
    return adata


def prepare(ref, qry, **kw):
    return prepare_group([ref], [qry], reference_sources=["ref"], query_sources=["qry"], label_key="cell_type", **kw)


def test_prepare_normalises_and_keeps_counts():
    ref, qry = prepare(counts(seed=0), counts(seed=1), batch_keys=["batch"], min_genes=1, target_sum=1e4)
    np.testing.assert_allclose(np.expm1(ref.X.toarray()).sum(axis=1), 1e4, rtol=1e-4)
    raw = counts(seed=0)
    np.testing.assert_array_equal(ref.layers["counts"].toarray(), raw[ref.obs_names].X.toarray())
    assert qry.n_vars == ref.n_vars == 200


def test_gene_mismatch_and_missing_column_are_errors():
    with pytest.raises(InputError, match="share only 0 genes"):
        prepare(counts(seed=0), counts(seed=1, prefix="h"))
    with pytest.raises(InputError, match="obs column 'donor' is missing"):
        prepare(counts(seed=0), counts(seed=1), batch_keys=["donor"])
    with pytest.raises(InputError, match="different values"):
        prepare(counts(seed=0), counts(seed=1, values="log-normalised"))


def test_hvg_keeps_genes_selected_in_half_of_the_batches():
    ref, _ = prepare(counts(n=240, seed=0), counts(seed=1), batch_keys=["batch"], min_genes=1)
    table = select_hvg(ref, batch_key="batch", n_top_genes=40, min_batch_fraction=0.5)
    # independent count: scanpy on each batch alone
    chosen = pd.Series(0, index=ref.var_names)
    for batch in ref.obs["batch"].unique():
        part = ref[ref.obs["batch"] == batch].copy()
        stats = sc.pp.highly_variable_genes(part, flavor="seurat", n_top_genes=40, inplace=False)
        chosen += stats["highly_variable"].to_numpy().astype(int)
    expected = set(chosen.index[chosen >= 2])
    assert set(table["gene"]) == expected
    assert dict(zip(table["gene"], table["n_batches"])) == {g: chosen[g] for g in expected}


def test_pca_projects_query_like_reference():
    ref, _ = prepare(counts(seed=0), counts(seed=1), min_genes=1)
    genes = list(ref.var_names[:100])
    r, q = embed_group(ref, ref.copy(), genes, embedding="pca", params={"n_comps": 10}, seed=0)
    np.testing.assert_allclose(r.obsm["X_emb"], q.obsm["X_emb"], atol=1e-4)
    # the embedding spans the top principal subspace of the scaled reference
    x = ref[:, genes].X.toarray().astype(np.float64)
    sd = x.std(0)
    sd[sd == 0] = 1
    z = np.clip((x - x.mean(0)) / sd, -10, 10)
    _, s, _ = np.linalg.svd(z - z.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.linalg.norm(r.obsm["X_emb"], axis=0), s[:10], rtol=1e-3)


def test_pearson_residuals_by_hand():
    ref, _ = prepare(counts(seed=0), counts(seed=1), min_genes=1)
    genes = list(ref.var_names[:50])
    r, q = embed_group(ref, ref.copy(), genes, embedding="pearson_pca", params={"n_comps": 5, "theta": 100.0}, seed=0)
    np.testing.assert_allclose(r.obsm["X_emb"], q.obsm["X_emb"], atol=1e-3)
    # hand-computed residuals: PCA of them has the same singular values
    c = ref.layers["counts"].toarray().astype(np.float64)
    n_c = c.sum(1, keepdims=True)
    p = c[:, :50].sum(0) / c.sum()
    mu = n_c * p
    z = np.clip((c[:, :50] - mu) / np.sqrt(mu + mu**2 / 100.0), -np.sqrt(len(c)), np.sqrt(len(c)))
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(r.obsm["X_emb"], axis=0), s[:5], rtol=1e-3)


def test_counts_method_is_skipped_on_log_normalised_data():
    pearson_pca, pca = EMBEDDINGS["pearson_pca"], EMBEDDINGS["pca"]
    assert skip_reason(pearson_pca, "log-normalised") == "needs raw counts but the group's values are log-normalised"
    assert skip_reason(pearson_pca, "counts") is None and skip_reason(pca, "log-normalised") is None
    ref, _ = prepare(counts(seed=0, values="log-normalised"), counts(seed=1, values="log-normalised"), min_genes=1)
    with pytest.raises(InputError, match="needs raw counts"):
        embed_group(ref, ref, list(ref.var_names), embedding="pearson_pca", params={}, seed=0)
