"""Spatial methods in the workflow's registries, on tiny simulated sections: spatial_avg, gnn, gnn_pretrained, niches.

Every check is against a brute-force recomputation (pairwise distances, loops, sklearn's KMeans and ARI).
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from cellquery.config import check_config, check_source, method_skip_reason
from cellquery.data.sources import load_dataset
from cellquery.errors import InputError
from cellquery.predictors import run_predictor
from cellquery.preprocess import prepare_group
from cellquery.settings import GroupSettings
from cellquery.spatial.settings import SpatialSettings

SETTINGS = SpatialSettings("section", 30.0, "domain", 4)
SPEC = {"values": "counts", "source": "simulate_spatial"}


@pytest.fixture(scope="module")
def group():
    reference = load_dataset("ref", {**SPEC, "simulate_spatial": {"dissociated": True, "cells_per_section": 80, "n_genes": 120}})
    query = load_dataset("qry", {**SPEC, "simulate_spatial": {"cells_per_section": 90, "n_genes": 120, "seed": 2}})
    ref, qry = prepare_group([reference], [query], reference_sources=["ref"], query_sources=["qry"],
                             label_key="cell_type", batch_keys=["section"], min_genes=5)
    for part in (ref, qry):
        part.uns["spatial"] = SETTINGS.as_uns()
    return ref, qry, list(ref.var_names[:60])


def brute_neighbours(adata, radius):
    """Rows: each cell's neighbours within radius in its section, itself included (pairwise distances)."""
    xy, sec = adata.obsm["spatial"], adata.obs["section"].astype(str).to_numpy()
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    return [np.flatnonzero((d[i] <= radius) & (sec == sec[i])) for i in range(adata.n_obs)]


def test_simulate_spatial_source_keeps_coordinates_through_preprocess(group):
    ref, qry, _ = group
    assert "spatial" in qry.obsm and qry.obsm["spatial"].shape == (qry.n_obs, 2)
    assert "spatial" not in ref.obsm
    assert set(qry.obs["section"]) == {"section1", "section2"}
    assert {"plasma cell", "erythroblast"}.isdisjoint(set(ref.obs["cell_type"]))
    with pytest.raises(InputError, match="cells_per_section"):
        check_source("x", {"source": "simulate_spatial", "simulate_spatial": {}})


def test_spatial_avg_averages_query_neighbourhoods_and_keeps_reference_profiles(group):
    from cellquery.embed.pca import dense
    from cellquery.embed.spatial_avg import averaged_expression

    ref, qry, genes = group
    got = averaged_expression(qry, genes, SETTINGS)
    x = dense(qry[:, genes].X)
    want = np.stack([x[rows].mean(axis=0) for rows in brute_neighbours(qry, SETTINGS.radius)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(averaged_expression(ref, genes, SETTINGS), dense(ref[:, genes].X), rtol=1e-6)


def test_spatial_methods_skipped_on_groups_without_spatial_settings():
    config = {
        "datasets": {"a": {"source": "simulate", "values": "counts"}},
        "groups": {"plain": {"reference": ["a"], "query": ["a"]},
                   "spatial": {"reference": ["a"], "query": ["a"], "spatial": {"section_key": "section", "radius": 30}}},
        "methods": {"spatial_avg": {"embedding": "spatial_avg"}, "gnn": {"predictor": "gnn"}, "pca": {"embedding": "pca"}},
    }
    for method in ("spatial_avg", "gnn"):
        assert "needs spatial coordinates" in method_skip_reason(config, "plain", method)
        assert method_skip_reason(config, "spatial", method) is None
    assert method_skip_reason(config, "plain", "pca") is None


def test_group_subset_must_name_declared_methods():
    config = {
        "datasets": {"a": {"source": "simulate", "values": "counts", "simulate": {}}},
        "groups": {"g": {"reference": ["a"], "query": ["a"], "methods": ["nope"]}},
        "methods": {"pca": {"embedding": "pca"}}, "indexes": {}, "transfers": {},
    }
    with pytest.raises(InputError, match=r"groups.g.methods: unknown 'nope'"):
        check_config(config)


@pytest.fixture(scope="module")
def gnn_runs(group):
    ref, qry, genes = group
    settings = GroupSettings.from_config({"label_key": "cell_type", "batch_keys": ["section"]})
    common = dict(finetune_epochs=15, hidden=16, latent=8, min_probability=0.4)
    return {
        name: run_predictor(ref, qry, genes, predictor=name, params=params, group=settings, seed=0)
        for name, params in (("gnn", common), ("gnn_pretrained", {**common, "pretrain_epochs": 10}))
    }


def test_gnn_predictors_reject_below_min_probability(gnn_runs, group):
    ref, qry, _ = group
    for name, (table, ref_emb, qry_emb, timings) in gnn_runs.items():
        assert len(table) == qry.n_obs and qry_emb.obsm["X_emb"].shape == (qry.n_obs, 8)
        rejected = table["probability"].to_numpy() < 0.4
        assert ((table["prediction"] == "rejected").to_numpy() == rejected).all()
        kept = table.loc[~rejected]
        assert (kept["prediction"] == kept["top_label"]).all()
        assert set(kept["prediction"]) <= set(ref.obs["cell_type"].astype(str))
        assert ("pretrain_s" in set(timings["phase"])) == (name == "gnn_pretrained")
    # same initial weights, fine-tuned the same way: pretraining is what differs
    assert not np.allclose(gnn_runs["gnn"][0]["probability"], gnn_runs["gnn_pretrained"][0]["probability"])


def test_gnn_loss_curves_in_the_query_embedding(gnn_runs, group):
    """Each run keeps its losses per epoch (query file's uns["loss_curves"]): those of the same training run by hand."""
    import torch

    from cellquery.predictors.gnn import joint_graph
    from cellquery.spatial.gnn import build_model, fine_tune, pretrain_masked, torch_graph
    from cellquery.spatial.settings import spatial_settings

    ref, qry, genes = group
    x = np.vstack([np.asarray(sp.csr_matrix(a[:, list(genes)].X).toarray()) for a in (ref, qry)]).astype(np.float32)
    classes, codes = np.unique(ref.obs["cell_type"].astype(str), return_inverse=True)
    y = np.concatenate([codes, np.zeros(qry.n_obs, dtype=int)])
    train = np.arange(len(x)) < ref.n_obs
    graph = torch_graph(joint_graph(ref, qry, spatial_settings(qry, "query")))
    for name, pretrain_epochs in (("gnn", 0), ("gnn_pretrained", 10)):
        _, reference, query, _ = gnn_runs[name]
        curves = query.uns["loss_curves"]
        assert "loss_curves" not in reference.uns
        assert set(curves) == ({"pretrain", "finetune"} if pretrain_epochs else {"finetune"}) and len(curves["finetune"]) == 15
        torch.set_num_threads(1)
        model = build_model(len(genes), seed=0, hidden=16, latent=8, layers=("gcn", "gat"))
        if pretrain_epochs:
            expected = pretrain_masked(model, x, graph, mask_fraction=0.2, epochs=pretrain_epochs, lr=1e-2, seed=0)
            np.testing.assert_allclose(curves["pretrain"], expected, rtol=1e-5)
            assert curves["pretrain"][-1] < curves["pretrain"][0]
        _, expected = fine_tune(model, x, graph, y, train, n_classes=len(classes), epochs=15, lr=1e-2, seed=0)
        np.testing.assert_allclose(curves["finetune"], expected, rtol=1e-5)


def test_gnn_pretrained_needs_pretraining_epochs(group):
    from cellquery.predictors.gnn import pretrained

    ref, qry, genes = group
    with pytest.raises(InputError, match="pretrain_epochs"):
        pretrained.predict(ref, qry, genes, label_key="cell_type", pretrain_epochs=0)


def test_joint_graph_has_no_reference_edges(group):
    from cellquery.predictors.gnn import joint_graph

    ref, qry, _ = group
    graph = joint_graph(ref, qry, SETTINGS)
    assert graph[: ref.n_obs].nnz == 0 and graph[:, : ref.n_obs].nnz == 0
    want = sum(len(rows) - 1 for rows in brute_neighbours(qry, SETTINGS.radius))
    assert graph.nnz == want


def test_run_niches_equals_kmeans_of_brute_force_composition(gnn_runs, group):
    from cellquery.spatial.niche_scores import run_niches

    _, qry, _ = group
    table = gnn_runs["gnn"][0]
    niches, metrics = run_niches(table[["cell", "prediction"]], qry, SETTINGS, seed=3)
    labels = table["prediction"].astype(str).to_numpy()
    categories = np.unique(labels)
    composition = np.stack([
        [(labels[rows] == c).mean() for c in categories] for rows in brute_neighbours(qry[table["cell"]], SETTINGS.radius)
    ])
    want = KMeans(n_clusters=4, n_init=10, random_state=3).fit_predict(composition)
    assert adjusted_rand_score(want, niches["niche"]) == pytest.approx(1.0)
    regions = qry.obs.loc[table["cell"], "domain"].astype(str)
    assert metrics["niche_ari"] == pytest.approx(adjusted_rand_score(regions, niches["niche"]))
    assert list(niches["region"]) == list(regions)


def test_spatial_sections_figure(tmp_path):
    import matplotlib.image as mpimg

    from cellquery.plots.spatial import plot_spatial_sections

    xy = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    rows = [{"group": "g", "section": "s1", "coords": xy, "truth": ["a", "b", "c"],
             "runs": {"m": ["a", "rejected", "ambiguous"], "n": ["a", "b", "b"]}}]
    plot_spatial_sections(rows, tmp_path / "f.png")
    plot_spatial_sections([], tmp_path / "none.png")
    height, width = mpimg.imread(tmp_path / "f.png").shape[:2]
    assert width > 2 * height  # one row of three panels (truth and two runs) and the legend
    assert mpimg.imread(tmp_path / "none.png").size > 0


def test_spatial_problems_of_a_query_without_coordinates(tmp_path, group):
    from cellquery.io import write_h5ad
    from cellquery.spatial.settings import spatial_problems
    from cellquery.validate import open_loaded

    _, qry, _ = group
    spec = {"section_key": "section", "radius": 30, "domain_key": "domain"}
    good, bad = qry.copy(), qry.copy()
    del bad.obsm["spatial"], bad.obs["domain"]
    paths = []
    for name, adata in (("good", good), ("bad", bad)):
        paths.append(tmp_path / f"{name}.h5ad")
        write_h5ad(adata, paths[-1])
    specs = {n: {"source": f"{n}.h5ad"} for n in ("good", "bad")}
    loaded = open_loaded(paths, ["good", "bad"], specs)
    problems = spatial_problems(loaded, spec)
    assert len(problems) == 2 and all("bad.h5ad" in p for p in problems)
    assert "obsm['spatial']: missing" in problems[0] and "'domain' (spatial.domain_key)" in problems[1]
    assert spatial_problems(loaded, None) == []
