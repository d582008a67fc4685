"""scVI embedding: shapes, reference-fitted latent that separates types, surgery, counts required."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from cellquery.embed import embed_group, scvi
from cellquery.errors import InputError

FAST = dict(max_epochs=20, query_epochs=5, n_hidden=32)


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(None)  # all four types in the reference


def knn_accuracy(ref, qry, ref_emb, qry_emb) -> float:
    labels = ref.obs["cell_type"].astype(str).to_numpy()
    predicted = KNeighborsClassifier(n_neighbors=10).fit(ref_emb, labels).predict(qry_emb)
    return float((predicted == qry.obs["cell_type"].astype(str).to_numpy()).mean())


def test_surgery_embedding_through_embed_group(data):
    ref, qry, genes = data
    reference, query = embed_group(ref, qry, genes, embedding="scvi", params={"batch_key": "study", **FAST}, seed=0)
    assert reference.obsm["X_emb"].shape == (ref.n_obs, 10) and query.obsm["X_emb"].shape == (qry.n_obs, 10)
    assert np.isfinite(query.obsm["X_emb"]).all()
    # four well-separated types: a 10-NN vote in the latent space recovers them
    assert knn_accuracy(ref, qry, reference.obsm["X_emb"], query.obsm["X_emb"]) > 0.9
    assert reference.uns["embedding"]["batch_key"] == "study"


def test_without_batch_key_is_deterministic(data):
    ref, qry, genes = data
    first = scvi.embed(ref, qry, genes, seed=4, **{**FAST, "max_epochs": 5})
    second = scvi.embed(ref, qry, genes, seed=4, **{**FAST, "max_epochs": 5})
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_needs_counts_and_batch_column(data):
    ref, qry, genes = data
    ref_log, qry_log = ref.copy(), qry.copy()
    ref_log.uns["values"] = qry_log.uns["values"] = "log-normalised"
    with pytest.raises(InputError, match="needs raw counts"):
        embed_group(ref_log, qry_log, genes, embedding="scvi", params={}, seed=0)
    with pytest.raises(InputError, match="'plate'"):
        scvi.embed(ref, qry, genes, batch_key="plate", **FAST)
    del ref_log.layers["counts"]
    with pytest.raises(InputError, match=r"layers\['counts'\]"):
        scvi.embed(ref_log, qry, genes, **FAST)
    with pytest.raises(InputError, match="query_epochs"):
        scvi.embed(ref, qry, genes, batch_key="study", **{**FAST, "max_epochs": 1, "query_epochs": 0})


def test_no_params_pass_the_package_defaults(data, monkeypatch):
    # Stubbed at the package boundary: SCVI.train records its arguments and marks the model trained
    # without training it; setup, load_query_data and the encoding are scvi-tools' own code.
    import inspect

    import scvi as scvi_tools

    train_defaults = {k: p.default for k, p in inspect.signature(scvi_tools.model.SCVI.train).parameters.items()}
    calls = []

    def train(self, **kwargs):
        calls.append((kwargs, self.adata.n_obs))
        self.is_trained_ = True

    monkeypatch.setattr(scvi_tools.model.SCVI, "train", train)
    ref, qry, genes = data
    ref_emb, qry_emb = scvi.embed(ref, qry, genes, batch_key="study")
    assert ref_emb.shape == (ref.n_obs, 10) and qry_emb.shape == (qry.n_obs, 10)
    assert [n for _, n in calls] == [ref.n_obs, qry.n_obs]  # the reference model, then the query's surgery
    for kwargs, _ in calls:
        assert kwargs["max_epochs"] is train_defaults["max_epochs"] is None  # scvi-tools' epoch heuristic
        assert kwargs["batch_size"] == train_defaults["batch_size"]
        assert kwargs["early_stopping"] is train_defaults["early_stopping"]
    assert calls[1][0]["plan_kwargs"] == {"weight_decay": 0.0}  # the project's surgery rule (scArches tutorial)
