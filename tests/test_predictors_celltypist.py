"""CellTypist: interface, Unassigned as rejection, majority voting, hand-computed probabilities, the scikit-learn shim."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from cellquery.errors import InputError
from cellquery.predictors import celltypist, run_predictor

ABSENT = "erythroblast"
REASON = celltypist.runtime_missing()
needs_celltypist = pytest.mark.skipif(REASON is not None, reason=f"celltypist: {REASON}")


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


@pytest.fixture(scope="module")
def result(data, group):
    ref, qry, genes = data
    return run_predictor(ref, qry, genes, predictor="celltypist", params={}, group=group, seed=0)


@needs_celltypist
def test_interface_accuracy_and_rejection(data, result, fates):
    ref, qry, genes = data
    table, ref_emb, qry_emb, timings = result
    assert len(table) == qry.n_obs and list(table["cell"]) == list(qry.obs_names)
    labels = set(ref.obs["cell_type"].astype(str))
    assert set(table["prediction"]) <= labels | {"rejected", "ambiguous"}
    assert table["score"].between(0, 1).all()
    # a cell is Unassigned before voting exactly when no class probability exceeds p_thres (0.5)
    assert ((table["cell_label"] == "Unassigned") == (table["score"] <= 0.5)).all()
    kept = ~table["prediction"].isin(["rejected", "ambiguous"])
    means = ref.obs.groupby(ref.obs["cell_type"].astype(str))[list(fates)].mean()
    np.testing.assert_allclose(table.loc[kept, [f"pred_{k}" for k in fates]], means.loc[table.loc[kept, "prediction"]].to_numpy())
    assert table.loc[~kept, [f"pred_{k}" for k in fates]].isna().all().all()
    assert ref_emb.obsm["X_emb"].shape == (ref.n_obs, 0) and {"train_s", "query_s"} == set(timings["phase"])
    positive = table["true_label"] != ABSENT
    assert (table.loc[positive, "prediction"] == table.loc[positive, "true_label"]).mean() > 0.8
    assert (table.loc[~positive, "prediction"] == "rejected").any()  # the absent type is Unassigned at least sometimes


@needs_celltypist
def test_majority_voting_gives_each_cluster_its_most_frequent_label(result):
    table = result[0]
    assert table["over_clustering"].nunique() > 1
    for _, cluster in table.groupby("over_clustering"):
        counts = cluster["cell_label"].value_counts()
        top = sorted(counts[counts == counts.max()].index)[0]  # pandas' crosstab idxmax: first in sorted order
        expected = {"Unassigned": "rejected"}.get(top, top if "|" not in top else "ambiguous")
        assert (cluster["prediction"] == expected).all()


@needs_celltypist
def test_tiny_case_probabilities_by_hand():
    # Three types with their own marker genes; query cells are copies of reference cells plus cells
    # without any marker. Probabilities: expit of the one-vs-rest decision score of the scaled values
    # (z-scores with the reference's gene means and SDs, clipped at 10), computed here from the model.
    rng = np.random.default_rng(1)
    mean = np.full((3, 24), 2.0)
    for t in range(3):
        mean[t, 8 * t: 8 * t + 8] = 40.0
    types = np.repeat(["A", "B", "C"], 15)
    counts = rng.poisson(mean[np.repeat(np.arange(3), 15)]).astype(np.float32)
    markerless = rng.poisson(np.full((3, 24), 2.0)).astype(np.float32)
    reference = ad.AnnData(X=sp.csr_matrix(counts), obs=pd.DataFrame({"cell_type": types}, index=[f"r{i}" for i in range(45)]))
    reference.layers["counts"] = reference.X.copy()
    copies = [0, 16, 44]
    query = ad.AnnData(X=sp.csr_matrix(np.vstack([counts[copies], markerless])), obs=pd.DataFrame(index=[f"q{i}" for i in range(6)]))
    query.layers["counts"] = query.X.copy()
    reference.var_names = query.var_names = [f"g{j}" for j in range(24)]
    genes = list(reference.var_names)

    model = celltypist.train_model(reference, genes, types)
    annotation = celltypist.annotate(model, query, p_thres=0.5, majority_voting=False)
    x = np.log1p(np.vstack([counts[copies], markerless]) / np.vstack([counts[copies], markerless]).sum(1, keepdims=True) * 1e4)
    z = np.minimum((x - model.scaler.mean_) / model.scaler.scale_, 10)
    probability = expit(z @ model.classifier.coef_.T + model.classifier.intercept_)
    np.testing.assert_allclose(annotation.probability_matrix.to_numpy(), probability, rtol=1e-5, atol=1e-6)
    labels = celltypist.restore_unassigned(annotation.predicted_labels["predicted_labels"].astype(str), types)
    np.testing.assert_array_equal(labels[:3], ["A", "B", "C"])  # the copies: their own type, alone above 0.5
    hand = ["|".join(np.asarray(model.cell_types)[p > 0.5]) or "Unassigned" for p in probability]
    np.testing.assert_array_equal(labels, hand)
    above = (probability > 0.5).sum(axis=1)
    expected = np.where(above == 0, "rejected", np.where(above > 1, "ambiguous", np.asarray(hand, dtype=object)))
    np.testing.assert_array_equal(celltypist.to_predictions(labels, types), expected)
    assert (above[3:] == 0).any()  # a marker-less cell is Unassigned


def test_cut_unassigned_labels_are_read_as_unassigned():
    # celltypist writes "Unassigned" into a string array as wide as its longest label: "U" for one-letter types
    types = ["A", "B", "T cell"]
    got = celltypist.to_predictions(["A", "U", "Unassig", "A|B", "T cell", "Unassigned"], types)
    np.testing.assert_array_equal(got, ["A", "rejected", "rejected", "ambiguous", "T cell", "rejected"])


def test_one_vs_rest_shim_matches_binary_fits():
    # the stand-in for LogisticRegression(multi_class="ovr"): one binary logistic regression per class
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 5))
    y = np.repeat(["a", "b", "c"], 30)
    x[y == "b", 0] += 2
    x[y == "c", 1] += 2
    shim = celltypist._ovr_logistic_regression(C=0.5, solver="lbfgs", max_iter=500, multi_class="ovr", n_jobs=None).fit(x, y)
    for j, label in enumerate(["a", "b", "c"]):
        binary = LogisticRegression(C=0.5, solver="lbfgs", max_iter=500).fit(x, y == label)
        np.testing.assert_allclose(shim.coef_[j], binary.coef_[0], rtol=1e-6)
        np.testing.assert_allclose(shim.decision_function(x)[:, j], binary.decision_function(x), rtol=1e-6)
    with pytest.raises(ValueError, match="multi_class"):
        celltypist._ovr_logistic_regression(multi_class="multinomial")


def test_log_normalised_values_are_rescaled_to_10k(data):
    ref = data[0]
    expected = celltypist.log1p_cp10k(ref).toarray()  # from the counts layer
    np.testing.assert_allclose(np.expm1(expected).sum(axis=1), 1e4, rtol=1e-4)
    log_only = ad.AnnData(X=sp.csr_matrix(np.log1p(ref.layers["counts"].toarray() / 7.0)))  # another per-cell scale
    np.testing.assert_allclose(celltypist.log1p_cp10k(log_only).toarray(), expected, rtol=1e-4, atol=1e-5)


def test_bad_params(data):
    ref, qry, genes = data
    with pytest.raises(InputError, match="p_thres"):
        celltypist.predict(ref, qry, genes, label_key="cell_type", p_thres=1.0)
    with pytest.raises(InputError, match="C > 0"):
        celltypist.predict(ref, qry, genes, label_key="cell_type", C=0)
