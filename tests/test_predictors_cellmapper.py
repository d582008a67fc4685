"""CellMapper predictor: interface, a hand-computed gauss-kernel transfer, rejection, kernels."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from cellquery.embed import pca
from cellquery.errors import InputError
from cellquery.predictors import SCORE_THRESHOLDS, cellmapper, run_predictor

ABSENT = "erythroblast"  # held out of the reference: a negative type of the query


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


@pytest.mark.parametrize("kernel", ["gauss", "hnoca"])
def test_interface_and_accuracy(data, group, fates, kernel):
    ref, qry, genes = data
    # the project's PCA joint space, in which the types are far apart; the default (CellMapper's fast
    # CCA, 50 components) is checked against CellMapper itself in test_no_params_are_cellmappers_own_defaults
    params = dict(kernel=kernel, n_neighbors=15, representation="pca", n_comps=32)
    table, ref_emb, qry_emb, timings = run_predictor(ref, qry, genes, predictor="cellmapper", params=params, group=group, seed=0)
    assert len(table) == qry.n_obs and list(table["cell"]) == list(qry.obs_names)
    allowed = set(ref.obs["cell_type"].astype(str)) | {"rejected", "ambiguous"}
    assert set(table["prediction"]) <= allowed
    accepted = table["prediction"] != "rejected"
    np.testing.assert_allclose(table.loc[accepted, [f"pred_{k}" for k in fates]].sum(axis=1), 1.0, atol=1e-6)
    assert table.loc[~accepted, f"pred_{fates[0]}"].isna().all()
    assert ((table["presence_score"] >= 0) & (table["presence_score"] <= 1)).all()
    assert ref_emb.obsm["X_emb"].shape[0] == ref.n_obs and qry_emb.obsm["X_emb"].shape[0] == qry.n_obs
    assert {"embed_s", "neighbors_s", "transfer_s"} <= set(timings["phase"])
    positive = table["true_label"] != ABSENT
    # the three reference types are far apart: nearly every positive cell gets its label
    assert (table.loc[positive, "prediction"] == table.loc[positive, "true_label"]).mean() > 0.9
    # CL ids follow the predicted labels
    to_cl = dict(zip(ref.obs["cell_type"].astype(str), ref.obs["cell_ontology_id"].astype(str)))
    assert (table.loc[accepted, "pred_cl"] == table.loc[accepted, "prediction"].map(to_cl)).all()


def test_gauss_kernel_matches_hand_computation(data, fates):
    ref, qry, genes = data
    k = 10
    result = cellmapper.predict(
        ref, qry, genes, label_key="cell_type", continuous_keys=fates, seed=0, n_neighbors=k, min_confidence=0,
        representation="pca", n_comps=32,  # the project's PCA (the default joint space is CellMapper's fast CCA)
    )
    ref_emb, qry_emb = pca.embed(ref, qry, genes, seed=0, n_comps=32)
    distances, indices = NearestNeighbors(n_neighbors=k).fit(ref_emb).kneighbors(qry_emb)
    sigma = distances.mean()  # one bandwidth: the mean of all query-reference neighbour distances
    weights = np.exp(-(distances**2) / (2 * sigma**2))
    weights /= weights.sum(axis=1, keepdims=True)
    labels, codes = np.unique(ref.obs["cell_type"].astype(str), return_inverse=True)
    scores = np.zeros((qry.n_obs, len(labels)))
    np.add.at(scores, (np.repeat(np.arange(qry.n_obs), k), codes[indices].ravel()), weights.ravel())
    np.testing.assert_array_equal(result.predictions["prediction"], labels[scores.argmax(axis=1)])
    np.testing.assert_allclose(result.predictions["confidence"], scores.max(axis=1), rtol=1e-5)
    expected = np.einsum("qk,qkf->qf", weights, ref.obs[fates].to_numpy(float)[indices])
    np.testing.assert_allclose(result.predictions[[f"pred_{f}" for f in fates]], expected, rtol=1e-5, atol=1e-8)


def test_rejection_follows_confidence_threshold(data):
    ref, qry, genes = data
    kw = dict(label_key="cell_type", seed=0, n_neighbors=15)
    loose = cellmapper.predict(ref, qry, genes, min_confidence=0.0, **kw).predictions
    strict = cellmapper.predict(ref, qry, genes, min_confidence=0.9, **kw).predictions
    assert (loose["prediction"] != "rejected").all()
    np.testing.assert_array_equal(strict["prediction"] == "rejected", loose["confidence"] < 0.9)
    kept = strict["prediction"] != "rejected"
    np.testing.assert_array_equal(strict.loc[kept, "prediction"], loose.loc[kept, "prediction"])
    # the score is the confidence, and the sweep at cut-off 0.9 is the run with min_confidence 0.9
    np.testing.assert_array_equal(loose["score"], loose["confidence"])
    np.testing.assert_array_equal(loose["sweep_0.9"], strict["prediction"])
    assert [c for c in loose.columns if c.startswith("sweep_")] == [f"sweep_{t:g}" for t in SCORE_THRESHOLDS]


def test_no_params_are_cellmappers_own_defaults(data):
    # the wrapper with no params maps as CellMapper(query, reference).map(obs_keys=label) does with
    # every package default (no representation given: its fast CCA fallback); min_confidence 0 turns
    # off the project's rejection rule, which CellMapper does not have
    from cellmapper import CellMapper
    from cellmapper.constants import PackageConstants

    ref, qry, genes = data
    result = cellmapper.predict(ref, qry, genes, label_key="cell_type", min_confidence=0)
    ref_light = ad.AnnData(ref[:, genes].X, obs=pd.DataFrame({"cell_type": pd.Categorical(ref.obs["cell_type"].astype(str))}, index=ref.obs_names))
    qry_light = ad.AnnData(qry[:, genes].X, obs=pd.DataFrame(index=qry.obs_names))
    ref_light.var_names = qry_light.var_names = genes
    mapper = CellMapper(qry_light, ref_light).map(obs_keys="cell_type")
    np.testing.assert_array_equal(result.predictions["prediction"], qry_light.obs["cell_type_pred"].astype(str))
    np.testing.assert_allclose(result.predictions["confidence"], qry_light.obs["cell_type_conf"], rtol=1e-6)
    np.testing.assert_allclose(result.query_embedding, qry_light.obsm["X_cca"], rtol=1e-5, atol=1e-6)
    assert result.reference_embedding.shape == (ref.n_obs, PackageConstants.N_COMPS)
    assert mapper.knn.yx.n_neighbors == 30 and mapper.mapping_operator is not None


def test_bad_parameters(data):
    ref, qry, genes = data
    with pytest.raises(InputError, match="kernel"):
        cellmapper.predict(ref, qry, genes, label_key="cell_type", kernel="umap")
    with pytest.raises(InputError, match="min_confidence"):
        cellmapper.predict(ref, qry, genes, label_key="cell_type", min_confidence=1.5)
    with pytest.raises(InputError, match="representation"):
        cellmapper.predict(ref, qry, genes, label_key="cell_type", representation="umap")
    # missing obs columns and genes: tests/test_predictors_runner.py (the runner checks them for every predictor)
