"""Symphony (symphonypy + harmonypy): interface, rejection, brute-force k-NN check, a hand-checked tiny case."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.predictors import run_predictor, symphony

ABSENT = "erythroblast"
REASON = symphony.runtime_missing()
needs_symphony = pytest.mark.skipif(REASON is not None, reason=f"symphony: {REASON}")


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


@pytest.fixture(scope="module")
def result(data, group):
    ref, qry, genes = data
    return run_predictor(ref, qry, genes, predictor="symphony", params={}, group=group, seed=0)


@needs_symphony
def test_interface_accuracy_and_rejection(data, result, fates):
    ref, qry, genes = data
    table, ref_emb, qry_emb, timings = result
    assert len(table) == qry.n_obs and list(table["cell"]) == list(qry.obs_names)
    assert set(table["prediction"]) <= set(ref.obs["cell_type"].astype(str)) | {"rejected"}
    assert ((table["score"] < 0.5) == (table["prediction"] == "rejected")).all()
    assert (table["mapping_distance"] > 0).all()
    assert ref_emb.obsm["X_emb"].shape == (ref.n_obs, 30) and qry_emb.obsm["X_emb"].shape == (qry.n_obs, 30)
    assert {"train_s", "query_s"} == set(timings["phase"])
    positive = table["true_label"] != ABSENT
    assert (table.loc[positive, "prediction"] == table.loc[positive, "true_label"]).mean() > 0.8
    assert (table.loc[~positive, "prediction"] == "rejected").any()  # the absent type is rejected at least sometimes


@needs_symphony
def test_labels_confidence_and_fates_are_the_brute_force_knn(data, result, fates):
    # in the integrated space the run returns: the 5 nearest reference cells (brute force) vote
    ref, qry, genes = data
    table, ref_emb, qry_emb, _ = result
    r, q = ref_emb.obsm["X_emb"].astype(float), qry_emb.obsm["X_emb"].astype(float)
    nearest = np.argsort(((q[:, None, :] - r[None, :, :]) ** 2).sum(axis=2), axis=1, kind="stable")[:, :5]
    labels = ref.obs["cell_type"].astype(str).to_numpy()
    votes = [pd.Series(labels[row]).value_counts() for row in nearest]
    top = np.array([v[v == v.max()].index.sort_values()[0] for v in votes])
    np.testing.assert_array_equal(table["top_label"], top)
    np.testing.assert_allclose(table["score"], [v.max() / 5 for v in votes])
    kept = table["prediction"] != "rejected"
    fate_means = ref.obs[list(fates)].to_numpy(float)[nearest].mean(axis=1)
    np.testing.assert_allclose(table.loc[kept, [f"pred_{k}" for k in fates]], fate_means[kept.to_numpy()], rtol=1e-6)
    assert table.loc[~kept, [f"pred_{k}" for k in fates]].isna().all().all()
    # M (query embedding obsm "mapping"): the same 5 neighbours at 1 / 5 each, every cell, rejected or not
    M = qry_emb.obsm["mapping"].toarray()
    hand_M = np.zeros_like(M)
    np.put_along_axis(hand_M, nearest, 0.2, axis=1)
    np.testing.assert_allclose(M, hand_M)
    np.testing.assert_allclose(M @ ref.obs[list(fates)].to_numpy(float), fate_means, rtol=1e-6)


@needs_symphony
def test_tiny_case_copies_land_on_their_type():
    # Hand-checked: three types with disjoint marker genes, two reference batches; query cells are copies
    # of reference cells. Each copy maps next to the reference cells of its type, all 5 of its
    # neighbours carry that type: the label is its type with confidence 1.
    rng = np.random.default_rng(2)
    mean = np.full((3, 40), 1.0)
    for t in range(3):
        mean[t, 12 * t: 12 * t + 12] = 25.0
    which = np.repeat(np.arange(3), 40)
    counts = rng.poisson(mean[which]).astype(float)
    x = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4).astype(np.float32)
    obs = pd.DataFrame({"cell_type": np.array(["A", "B", "C"])[which], "study": np.tile(["s1", "s2"], 60)}, index=[f"r{i}" for i in range(120)])
    reference = ad.AnnData(X=x, obs=obs)
    copies = [1, 7, 44, 50, 85, 119]
    query = ad.AnnData(X=x[copies], obs=pd.DataFrame({"study": ["s3"] * len(copies)}, index=[f"q{i}" for i in copies]))
    reference.var_names = query.var_names = [f"g{j}" for j in range(40)]
    result = symphony.predict(reference, query, list(reference.var_names), label_key="cell_type", batch_key="study", seed=0, n_comps=10)
    np.testing.assert_array_equal(result.predictions["prediction"], obs["cell_type"].to_numpy()[copies])
    np.testing.assert_allclose(result.predictions["score"], 1.0)


def test_bad_params(data):
    ref, qry, genes = data
    with pytest.raises(InputError, match="min_confidence"):
        symphony.predict(ref, qry, genes, label_key="cell_type", min_confidence=2)
    with pytest.raises(InputError, match="n_neighbors"):
        symphony.predict(ref, qry, genes, label_key="cell_type", n_neighbors=0)
    with pytest.raises(InputError, match="n_comps"):
        symphony.predict(ref, qry, genes, label_key="cell_type", n_comps=len(genes))
