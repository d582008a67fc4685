"""The spatial group of the shared toy run: rows for (a)-(d) and niche_ari recomputed from the run's own files."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import euclidean_distances

SPATIAL_METHODS = {"spatial_avg", "gnn_fast", "gnn_pretrained_fast"}


@pytest.fixture(scope="module")
def toy(toy_run):
    summary = pd.read_csv(toy_run.workdir / "results/summary.tsv", sep="\t")
    return toy_run.workdir, toy_run.config, summary


def spatial_groups(config):
    return [g for g, spec in config["groups"].items() if spec.get("spatial")]


def test_spatial_group_has_rows_for_every_method(toy):
    _, config, summary = toy
    (group,) = spatial_groups(config)
    rows = summary[summary["group"] == group]
    methods = config["groups"][group]["methods"]
    assert set(rows["method"]) == set(methods)
    for method in methods:
        got = set(rows.loc[rows["method"] == method, "metric"])
        assert {"mba", "mba_positive", "mba_negative", "niche_ari"} <= got, method
        values = rows.loc[(rows["method"] == method) & rows["metric"].isin(["mba", "niche_ari"]), "value"]
        assert values.notna().all() and (values <= 1).all()


def test_spatial_methods_are_skipped_with_a_reason_elsewhere(toy):
    _, config, summary = toy
    for group in set(config["groups"]) - set(spatial_groups(config)):
        rows = summary[(summary["group"] == group) & summary["method"].isin(SPATIAL_METHODS)]
        assert set(rows["method"]) == SPATIAL_METHODS
        assert rows["metric"].str.startswith("skipped: needs spatial coordinates").all()
        assert rows["value"].isna().all()


def test_niche_ari_recomputed_from_predictions_and_loaded_sections(toy):
    workdir, config, summary = toy
    (group,) = spatial_groups(config)
    spec = config["groups"][group]["spatial"]
    (query_name,) = config["groups"][group]["query"]
    data = ad.read_h5ad(workdir / f"results/data/{query_name}.h5ad")
    scores = summary[(summary["group"] == group) & (summary["metric"] == "niche_ari")]
    assert len(scores) == len(config["groups"][group]["methods"]) * len(config["seeds"])
    for _, row in scores.iterrows():
        kind = "predictors" if row["index"] == "native" else "embeddings"
        run = workdir / f"results/{group}/{kind}/{row['method']}/seed{row['seed']}/{row['index']}/{row['transfer']}"
        predictions = pd.read_csv(run / "predictions.tsv", sep="\t")
        cells = data[predictions["cell"].astype(str).to_numpy()]
        labels = predictions["prediction"].astype(str).to_numpy()
        xy, sections = cells.obsm["spatial"], cells.obs[spec["section_key"]].astype(str).to_numpy()
        near = (euclidean_distances(xy) <= spec["radius"]) & (sections[:, None] == sections[None, :])
        onehot = (labels[:, None] == np.unique(labels)[None, :]).astype(float)
        composition = (near @ onehot) / near.sum(axis=1)[:, None]  # each cell with itself and its neighbours
        niches = KMeans(n_clusters=spec["n_niches"], n_init=10, random_state=int(row["seed"])).fit_predict(composition)
        domains = cells.obs[spec["domain_key"]].astype(str)
        assert row["value"] == pytest.approx(adjusted_rand_score(domains, niches), abs=1e-9)
        table = pd.read_csv(run / "niches.tsv", sep="\t")
        assert list(table["cell"]) == list(predictions["cell"]) and list(table["region"]) == list(domains)
