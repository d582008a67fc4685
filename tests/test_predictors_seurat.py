"""Seurat v4 (FindTransferAnchors + TransferData through Rscript): interface, rejection, a hand-checked tiny case, skip."""

import dataclasses

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellquery.config import method_skip_reason
from cellquery.errors import InputError
from cellquery.predictors import run_predictor, seurat

ABSENT = "erythroblast"
REASON = seurat.runtime_missing()
needs_seurat = pytest.mark.skipif(REASON is not None, reason=f"seurat: {REASON}")


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


def tiny_group(copies: list[int]):
    """A reference of three well-separated types (30 cells each, 10 marker genes each; fate = the type's
    index) and a query of exact copies of reference cells ``copies``; log-normalised values."""
    rng = np.random.default_rng(0)
    types = np.repeat(["A", "B", "C"], 30)
    mean = np.full((3, 30), 1.0)
    for t in range(3):
        mean[t, 10 * t: 10 * t + 10] = 30.0
    counts = rng.poisson(mean[np.repeat(np.arange(3), 30)]).astype(float)
    x = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    obs = pd.DataFrame({"cell_type": types, "fate": np.repeat([0.0, 1.0, 2.0], 30)}, index=[f"r{i}" for i in range(90)])
    var = pd.DataFrame(index=[f"gene_{j}" for j in range(30)])  # underscores: Seurat renames such features
    reference = ad.AnnData(X=x.astype(np.float32), obs=obs, var=var)
    query = ad.AnnData(X=x[copies].astype(np.float32), obs=obs.iloc[copies].set_axis([f"q{i}" for i in range(len(copies))]), var=var)
    return reference, query


@needs_seurat
def test_interface_accuracy_and_rejection(data, group):
    # a group without continuous annotations: TransferData gets the labels alone (the tiny case below
    # transfers fates too)
    ref, qry, genes = data
    no_fates = dataclasses.replace(group, continuous_keys=())
    table, ref_emb, qry_emb, timings = run_predictor(ref, qry, genes, predictor="seurat", params={}, group=no_fates, seed=0)
    assert len(table) == qry.n_obs and list(table["cell"]) == list(qry.obs_names)
    assert set(table["prediction"]) <= set(ref.obs["cell_type"].astype(str)) | {"rejected"}
    # rejected exactly where Seurat's prediction.score.max is below 0.5
    assert ((table["score"] < 0.5) == (table["prediction"] == "rejected")).all()
    assert table["score"].between(0, 1).all()
    accepted = table["prediction"] != "rejected"
    assert not any(column.startswith("pred_fate") for column in table)
    assert ref_emb.obsm["X_emb"].shape == (ref.n_obs, 30) and qry_emb.obsm["X_emb"].shape == (qry.n_obs, 30)
    assert set(timings["phase"]) == {"transfer_s"}
    positive = table["true_label"] != ABSENT
    assert (table.loc[positive, "prediction"] == table.loc[positive, "true_label"]).mean() > 0.8
    assert (table.loc[~positive, "prediction"] == "rejected").any()  # the absent type is rejected at least sometimes
    assert (table["pred_cl"] == table["prediction"].map(dict(zip(ref.obs["cell_type"], ref.obs["cell_ontology_id"])))).loc[accepted].all()


@needs_seurat
def test_tiny_case_copies_get_their_type_score_one_and_fate():
    # Hand-checked: the types share no marker gene, so every anchor pairs cells of one type and each
    # query cell's k.weight nearest anchors all carry its type: prediction.score.max is exactly 1 and
    # the transferred fate is the type's constant fate.
    copies = [0, 5, 31, 40, 62, 88] + list(range(10, 30, 2)) + list(range(40, 60, 2)) + list(range(70, 90, 2))
    reference, query = tiny_group(copies)
    genes = list(reference.var_names)
    result = seurat.predict(
        reference, query, genes, label_key="cell_type", continuous_keys=["fate"], seed=0,
        npcs=10, dims=10, k_filter=None, k_score=10, k_weight=10,
    )
    expected = reference.obs["cell_type"].to_numpy()[copies]
    np.testing.assert_array_equal(result.predictions["prediction"], expected)
    np.testing.assert_allclose(result.predictions["score"], 1.0, atol=1e-9)
    np.testing.assert_allclose(result.predictions["pred_fate"], reference.obs["fate"].to_numpy()[copies], atol=1e-6)
    assert result.reference_embedding.shape == (90, 10) and result.query_embedding.shape == (len(copies), 10)


def test_missing_runtime_is_a_skip_reason(data, group, monkeypatch):
    # without R (or Seurat) the run is refused with the reason, and the DAG records it as a skip
    ref, qry, genes = data
    monkeypatch.setattr(seurat, "runtime_missing", lambda: "needs R (Rscript) with Matrix, Seurat; Rscript is not on PATH")
    with pytest.raises(InputError, match=r"predictor seurat: needs R \(Rscript\)"):
        run_predictor(ref, qry, genes, predictor="seurat", params={}, group=group, seed=0)
    config = {
        "datasets": {"d": {"values": "counts"}}, "groups": {"g": {"reference": ["d"], "query": ["d"]}},
        "methods": {"seurat": {"predictor": "seurat"}},
    }
    assert method_skip_reason(config, "g", "seurat") == "needs R (Rscript) with Matrix, Seurat; Rscript is not on PATH"


def test_missing_rscript_names_the_debian_package(monkeypatch):
    from cellquery.predictors import rscript

    monkeypatch.setattr(rscript.shutil, "which", lambda name: None)
    reason = rscript.missing_r_packages.__wrapped__(("Matrix", "Seurat"), "r-cran-seurat")
    assert reason == "needs R (Rscript) with Matrix, Seurat; Rscript is not on PATH (Debian: apt-get install r-cran-seurat)"


def test_bad_params(data):
    ref, qry, genes = data
    with pytest.raises(InputError, match="min_score"):
        seurat.predict(ref, qry, genes, label_key="cell_type", min_score=1.5)
    with pytest.raises(InputError, match="dims <= npcs"):
        seurat.predict(ref, qry, genes, label_key="cell_type", npcs=10, dims=20)
    with pytest.raises(InputError, match="k_weight"):
        seurat.predict(ref, qry, genes, label_key="cell_type", k_weight=0)
    tiny_ref, tiny_qry = tiny_group([0, 1, 2])
    with pytest.raises(InputError, match=r"npcs \(30\) must be below the cells"):
        seurat.predict(tiny_ref, tiny_qry, list(tiny_ref.var_names), label_key="cell_type")

