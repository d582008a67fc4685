"""scanpy ingest predictor: interface, a hand-computed projection and k-NN vote, no rejection."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from sklearn.neighbors import NearestNeighbors

from cellquery.errors import InputError
from cellquery.predictors import ingest, run_predictor

ABSENT = "erythroblast"


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


@pytest.fixture(scope="module")
def group_without_cl(group):
    return dataclasses.replace(group, ontology_key=None)  # a group without Cell Ontology ids


def test_interface_accuracy_and_no_rejection(data, group_without_cl, fates):
    ref, qry, genes = data
    params = {"n_comps": 20}
    table, ref_emb, qry_emb, timings = run_predictor(ref, qry, genes, predictor="ingest", params=params, group=group_without_cl, seed=0)
    assert len(table) == qry.n_obs and list(table["cell"]) == list(qry.obs_names)
    # ingest has no rejection: every cell gets a reference label
    assert set(table["prediction"]) <= set(ref.obs["cell_type"].astype(str))
    np.testing.assert_allclose(table[[f"pred_{k}" for k in fates]].sum(axis=1), 1.0, atol=1e-6)
    assert ref_emb.obsm["X_emb"].shape == (ref.n_obs, 20) and qry_emb.obsm["X_emb"].shape == (qry.n_obs, 20)
    assert {"train_s", "query_s"} <= set(timings["phase"])
    positive = table["true_label"] != ABSENT
    assert (table.loc[positive, "prediction"] == table.loc[positive, "true_label"]).mean() > 0.9


def test_matches_hand_computed_projection_and_vote(data, fates):
    ref, qry, genes = data
    k, n_comps = 7, 15
    result = ingest.predict(ref, qry, genes, label_key="cell_type", continuous_keys=fates, seed=0, n_comps=n_comps, n_neighbors=k)
    # ingest's projection: the query, centred on its own gene means, times the reference PCs
    x_ref = ref[:, genes].X.toarray()
    reference = sc.AnnData(x_ref)
    sc.pp.pca(reference, n_comps=n_comps, random_state=0)
    x_qry = qry[:, genes].X.toarray()
    expected = (x_qry - x_qry.mean(axis=0)) @ reference.varm["PCs"]
    np.testing.assert_allclose(result.query_embedding, expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(result.reference_embedding, reference.obsm["X_pca"], rtol=1e-4, atol=1e-4)
    # label: the most frequent label of the k nearest reference cells, ties to the first category
    _, indices = NearestNeighbors(n_neighbors=k).fit(result.reference_embedding).kneighbors(result.query_embedding)
    labels = ref.obs["cell_type"].astype(str).to_numpy()
    votes = [pd.Series(labels[row]).value_counts() for row in indices]
    hand = [v[v == v.max()].index.sort_values()[0] for v in votes]
    np.testing.assert_array_equal(result.predictions["prediction"], hand)
    # score: the share of the k neighbours that carry the label given
    np.testing.assert_allclose(result.predictions["score"], (labels[indices] == np.array(hand)[:, None]).mean(axis=1))
    expected_fates = ref.obs[fates].to_numpy(float)[indices].mean(axis=1)
    np.testing.assert_allclose(result.predictions[[f"pred_{f}" for f in fates]], expected_fates, rtol=1e-6)
    # M: weight 1 / k on each of the k neighbours, so M . Y_reference is the fates' mean
    M = result.mapping.toarray()
    hand_M = np.zeros((qry.n_obs, ref.n_obs))
    np.put_along_axis(hand_M, indices, 1.0 / k, axis=1)
    np.testing.assert_allclose(M, hand_M)
    np.testing.assert_allclose(M @ ref.obs[fates].to_numpy(float), expected_fates, rtol=1e-6)


def test_no_params_are_scanpys_defaults(data, monkeypatch):
    # with no params: sc.pp.pca's default components (settings.N_PCS, 50) and sc.pp.neighbors'
    # default k (15), as sc.pp.pca(ref); sc.pp.neighbors(ref); sc.tl.ingest(...) run them
    import inspect

    ref, qry, genes = data
    graphs = []
    neighbors = sc.pp.neighbors
    monkeypatch.setattr(sc.pp, "neighbors", lambda adata, **kw: graphs.append(kw) or neighbors(adata, **kw))
    result = ingest.predict(ref, qry, genes, label_key="cell_type", seed=0)
    reference = sc.AnnData(ref[:, genes].X.toarray())
    sc.pp.pca(reference)  # scanpy's defaults, random_state 0 included
    assert reference.obsm["X_pca"].shape[1] == sc.settings.N_PCS == 50
    np.testing.assert_allclose(np.abs(result.reference_embedding), np.abs(reference.obsm["X_pca"]), rtol=1e-3, atol=1e-3)
    assert graphs[0]["n_neighbors"] == inspect.signature(neighbors).parameters["n_neighbors"].default == 15
    assert graphs[0]["n_pcs"] == 50


def test_log_normalised_input_and_bad_params(data, group_without_cl):
    ref, qry, genes = data
    ref_log, qry_log = ref.copy(), qry.copy()
    del ref_log.layers["counts"], qry_log.layers["counts"]
    ref_log.uns["values"] = qry_log.uns["values"] = "log-normalised"
    table, *_ = run_predictor(ref_log, qry_log, genes, predictor="ingest", params={}, group=group_without_cl, seed=0)
    assert len(table) == qry.n_obs
    with pytest.raises(InputError, match="n_neighbors"):
        ingest.predict(ref, qry, genes, label_key="cell_type", n_neighbors=0)
    # a missing obs column: tests/test_predictors_runner.py (the runner checks it for every predictor)
