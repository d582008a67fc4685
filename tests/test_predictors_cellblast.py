"""Cell BLAST predictor: hit reconciliation, hit-based predictions, BLAST2CO, and a real run."""

import types

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.ontology import load_cell_ontology
from cellquery.predictors import cellblast, run_predictor

ABSENT = "natural killer cell"  # held out of the reference: a negative type of the query


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


def test_reconcile_matches_definitions_on_rectangular_hits():
    # Two query cells with two hits each: Hits stores this as a rectangular object array,
    # the case in which the package's own reconcile_models fails.
    hits = np.asarray([np.array([3, 5]), np.array([1, 2])], dtype=object)
    dist = np.asarray([np.array([[1.0, 3.0], [2.0, 2.0]]), np.array([[4.0, 0.0], [1.0, 1.0]])], dtype=object)
    pval = np.asarray([np.array([[0.01, 0.04], [0.5, 0.02]]), np.array([[0.0, 0.3], [0.2, 0.2]])], dtype=object)
    assert hits.ndim == 2 and dist.dtype == object  # the defect's precondition
    cell, hit, distance, p = cellblast.reconcile_hits(hits, dist, pval, n_models=2)
    np.testing.assert_array_equal(cell, [0, 0, 1, 1])
    np.testing.assert_array_equal(hit, [3, 5, 1, 2])
    np.testing.assert_allclose(distance, [2.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(p, [0.02, 0.1, 0.0, 0.2])  # geometric means: sqrt(0.01*0.04), sqrt(0.5*0.02), ...

    from Cell_BLAST.blast import Hits

    stub = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))
    with pytest.raises(Exception):  # the package defect worked around in cellblast.reconcile_hits
        Hits(None, list(hits), list(dist), list(pval), stub).reconcile_models()


def test_reconcile_agrees_with_package_on_ragged_hits():
    from Cell_BLAST.blast import Hits

    rng = np.random.default_rng(0)
    sizes = [3, 5, 4]
    hits = [rng.choice(50, size=s, replace=False) for s in sizes]
    dist = [rng.random((s, 3)) for s in sizes]
    pval = [rng.random((s, 3)) for s in sizes]
    stub = ad.AnnData(obs=pd.DataFrame(index=["a", "b", "c"]))
    package = Hits(None, hits, dist, pval, stub).reconcile_models()  # works when hits are ragged
    cell, hit, distance, p = cellblast.reconcile_hits(package.hits, dist, pval, n_models=3)
    np.testing.assert_allclose(distance, np.concatenate(list(package.dist)))
    np.testing.assert_allclose(p, np.concatenate(list(package.pval)))
    np.testing.assert_array_equal(hit, np.concatenate(hits))


def test_hit_predictions_follow_the_rule():
    labels = np.array(["A", "A", "B", "B", "C"])
    values = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0], [0.2, 0.8]])
    # query 0: hits 0,1,2 significant -> A 2/3; query 1: hits 0,2 -> tie -> ambiguous;
    # query 2: one significant hit -> rejected; query 3: no hit -> rejected
    cell = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    hit = np.array([0, 1, 2, 4, 0, 2, 3, 4])
    significant = np.array([True, True, True, False, True, True, True, False])
    pred, n_hits, share, means = cellblast.hit_predictions(cell, hit, significant, 4, labels, values, min_hits=2, min_fraction=0.5)
    np.testing.assert_array_equal(pred, ["A", "ambiguous", "rejected", "rejected"])
    np.testing.assert_array_equal(n_hits, [3, 2, 1, 0])
    np.testing.assert_allclose(share, [2 / 3, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(means[0], [0.5, 0.5])
    np.testing.assert_allclose(means[1], [0.5, 0.5])
    assert np.isnan(means[2:]).all()


def test_significance_is_the_package_filter():
    # Hits.reconcile_models().filter(by="pval", cutoff) keeps P <= cutoff: a P-value equal to the
    # cut-off counts, here as in the package (ragged hits, on which the package's code runs).
    from Cell_BLAST.blast import Hits

    hits = [np.array([0, 1]), np.array([2, 3, 4])]
    dist = [np.ones((2, 2)), np.ones((3, 2))]
    # 0.25 is exact in floating point, and so is the geometric mean of (0.25, 0.25)
    pval = [np.array([[0.25, 0.25], [0.5, 0.01]]), np.array([[0.25, 0.25], [0.04, 0.06], [0.5, 0.5]])]
    stub = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))
    package = Hits(None, hits, dist, pval, stub).reconcile_models().filter(by="pval", cutoff=0.25)
    blast = types.SimpleNamespace(models=[0, 1], ref=ad.AnnData(obs=pd.DataFrame({"t": list("AABBB")}, index=list("vwxyz"))))
    result = types.SimpleNamespace(hits=hits, dist=dist, pval=pval)
    table = cellblast.annotate(
        blast, result, ["a", "b"], "t", [], None, p_cutoff=0.25, sweep=[0.25], min_hits=1, min_fraction=0.5,
        blast2co_threshold=0.5, blast2co_min_path=4,
    )
    np.testing.assert_array_equal(table["n_hits"], [len(h) for h in package.hits])
    assert table["n_hits"].tolist() == [2, 2]  # each cell's hit at P = 0.25 is kept
    np.testing.assert_array_equal(table["sweep_0.25"], table["prediction"])


def test_cell_p_value_is_the_min_hits_th_smallest_and_decides_rejection():
    rng = np.random.default_rng(4)
    cell = np.sort(rng.integers(0, 12, 50))
    p = rng.choice([0.01, 0.05, 0.1, 0.2, 0.5], size=50)  # ties with the cut-offs: P <= cut-off counts
    for min_hits in (0, 1, 2, 4):
        expected = [
            0.0 if min_hits == 0 else np.sort(p[cell == q])[min_hits - 1] if (cell == q).sum() >= min_hits else 1.0
            for q in range(13)  # cell 12 has no hits
        ]
        np.testing.assert_allclose(cellblast.cell_p_values(cell, p, 13, min_hits), expected)
    # through annotate: a cell escapes rejection at cut-off t exactly when its P-value is at most t
    hits = [np.arange(5) for _ in range(4)]
    pval = [rng.choice([0.01, 0.05, 0.1, 0.2, 0.5], size=(5, 1)) for _ in range(4)]
    blast = types.SimpleNamespace(models=[0], ref=ad.AnnData(obs=pd.DataFrame({"t": list("AAAAA")}, index=list("vwxyz"))))
    result = types.SimpleNamespace(hits=hits, dist=[np.ones((5, 1))] * 4, pval=pval)
    table = cellblast.annotate(
        blast, result, ["a", "b", "c", "d"], "t", [], None, p_cutoff=0.05, sweep=[0.01, 0.05, 0.1, 0.2], min_hits=2,
        min_fraction=0.5, blast2co_threshold=0.5, blast2co_min_path=4,
    )
    np.testing.assert_allclose(table["p_value"], [np.sort(q.ravel())[1] for q in pval])
    np.testing.assert_allclose(table["score"], 1.0 - table["p_value"])
    for t in (0.01, 0.05, 0.1, 0.2):
        np.testing.assert_array_equal(table[f"sweep_{t:g}"] == "rejected", table["p_value"] > t)


def _expected_blast2co(ontology, terms, weights, min_path=4, threshold=0.5):
    """BLAST2CO by hand: scores propagated to ancestors, deepest terms above the threshold."""
    score: dict[str, float] = {}
    for term, weight in zip(terms, weights):
        for t in {term} | ontology.ancestors(term):
            score[t] = score.get(t, 0.0) + weight / sum(weights)
    kept = {t for t, s in score.items() if s > threshold}
    leaves = [t for t in kept if not any(t in ontology.ancestors(u) for u in kept) and ontology.depth(t) >= min_path]
    best = max((score[t] for t in leaves), default=None)
    leaves = [t for t in leaves if score[t] == best]
    return leaves[0] if len(leaves) == 1 else ("ambiguous" if leaves else "rejected")


def test_blast2co_matches_hand_computation():
    ontology = load_cell_ontology()
    terms = ["CL:0000895", "CL:0000895", "CL:0000900", "CL:0000900", "CL:0001054"]  # CD4 naive T x2, CD8 naive T x2, monocyte
    blast = types.SimpleNamespace(ref=ad.AnnData(obs=pd.DataFrame({"cl": terms}, index=[f"r{i}" for i in range(5)])))
    cell = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    hit = np.array([0, 1, 2, 0, 2, 0, 0, 4])
    p = np.array([0.01, 0.01, 0.01, 0.02, 0.02, 0.01, 0.01, 0.01])
    significant = np.ones(len(cell), bool)
    pred = cellblast.blast2co(blast, ["q0", "q1", "q2", "q3"], cell, hit, p, significant, "cl", min_hits=2, threshold=0.5, min_path=4)
    expected = [
        _expected_blast2co(ontology, [terms[h] for h in hit[cell == q]], list(1 - p[cell == q])) for q in range(3)
    ] + [_expected_blast2co(ontology, [terms[0], terms[4]], [0.99, 0.99])]
    expected[2] = "rejected"  # one hit: fewer than min_hits
    assert expected[0] == "CL:0000895"  # 2 of 3 hits, so the CD4 naive T cell term itself
    assert expected[1] not in ("CL:0000895", "CL:0000900", "rejected")  # a tie: resolved to a common ancestor
    np.testing.assert_array_equal(pred, expected)


def test_run_rejects_absent_type_and_follows_interface(data, group, fates):
    ref, qry, genes = data
    params = dict(n_models=2, epochs=60, learning_rate=3e-3, adversarial_delay=5, n_empirical=1000)
    table, ref_emb, qry_emb, timings = run_predictor(ref, qry, genes, predictor="cellblast", params=params, group=group, seed=0)
    assert len(table) == qry.n_obs and list(table["cell"]) == list(qry.obs_names)
    assert set(table["prediction"]) <= set(ref.obs["cell_type"].astype(str)) | {"rejected", "ambiguous"}
    assert set(table["pred_cl"]) <= set(load_cell_ontology().terms) | {"rejected", "ambiguous"}
    made = table["n_hits"] >= 2
    np.testing.assert_allclose(table.loc[made, [f"pred_{k}" for k in fates]].sum(axis=1), 1.0, atol=1e-6)
    assert table.loc[~made, f"pred_{fates[0]}"].isna().all()
    assert (table.loc[table["prediction"] == "rejected", "n_hits"] < 2).all()
    # the cell's P-value decides its rejection at the default cut-off 0.05; its score is 1 - P
    np.testing.assert_array_equal(table["prediction"] == "rejected", table["p_value"] > 0.05)
    np.testing.assert_allclose(table["score"], 1.0 - table["p_value"])
    assert ref_emb.obsm["X_emb"].shape == (ref.n_obs, 10) and qry_emb.obsm["X_emb"].shape == (qry.n_obs, 10)
    assert {"train_s", "index_s", "query_s", "annotate_s"} <= set(timings["phase"])
    negative = table["true_label"] == ABSENT
    assert negative.sum() > 30
    # the held-out type is mostly rejected; the reference types are mostly recognised
    assert (table.loc[negative, "prediction"] == "rejected").mean() > 0.5
    assert (table.loc[~negative, "prediction"] == table.loc[~negative, "true_label"]).mean() > 0.8


def test_single_model_run_is_deterministic(data):
    # one model: every query cell has exactly n_neighbors hits (the rectangular case)
    ref, qry, genes = data
    kw = dict(label_key="cell_type", batch_key="study", seed=3, n_models=1, epochs=3, n_empirical=200, n_posterior=10)
    first = cellblast.predict(ref, qry, genes, sweep=[0.05, 0.2], **kw)
    second = cellblast.predict(ref, qry, genes, **kw)
    pd.testing.assert_frame_equal(first.predictions.drop(columns=["sweep_0.05", "sweep_0.2"]), second.predictions)
    np.testing.assert_array_equal(first.query_embedding, second.query_embedding)
    # the sweep's columns are the predictions a run with that P-value cut-off makes
    np.testing.assert_array_equal(first.predictions["sweep_0.05"], first.predictions["prediction"])  # 0.05 is the default
    looser = cellblast.predict(ref, qry, genes, p_cutoff=0.2, **kw)
    np.testing.assert_array_equal(first.predictions["sweep_0.2"], looser.predictions["prediction"])
    assert (first.predictions["sweep_0.2"] == "rejected").sum() <= (first.predictions["sweep_0.05"] == "rejected").sum()


def test_needs_counts_and_checks_params(data):
    # log-normalised groups are refused by the runner: tests/test_predictors_runner.py
    ref, qry, genes = data
    ref_log = ref.copy()
    del ref_log.layers["counts"]
    with pytest.raises(InputError, match=r"layers\['counts'\]"):
        cellblast.predict(ref_log, qry, genes, label_key="cell_type")
    with pytest.raises(InputError, match="p_cutoff"):
        cellblast.predict(ref, qry, genes, label_key="cell_type", p_cutoff=0)
    with pytest.raises(InputError, match=r"p_cutoff and sweep must be in \(0, 1\], got \[0.05, 1.5\]"):
        cellblast.predict(ref, qry, genes, label_key="cell_type", sweep=[1.5])


def _defaults(function) -> dict:
    """A function's keyword defaults, from its signature."""
    import inspect

    return {k: p.default for k, p in inspect.signature(function).parameters.items() if p.default is not inspect.Parameter.empty}


def test_no_params_pass_the_package_defaults(data, monkeypatch):
    # Stubbed at the package boundary: fit_DIRECTi, BLAST and BLAST.query are replaced by recorders
    # of the arguments the wrapper passes, and the run stops at the query; nothing is trained.
    import Cell_BLAST as cb
    from Cell_BLAST.blast import BLAST, Hits
    from Cell_BLAST.rmbatch import Adversarial

    fit_defaults, adversarial = _defaults(cb.directi.fit_DIRECTi), _defaults(Adversarial.__init__)
    blast_defaults, query_defaults = _defaults(BLAST.__init__), _defaults(BLAST.query)
    calls: dict = {"fit": []}

    class Stop(Exception):
        pass

    class RecordingBLAST:
        def __init__(self, models, ref, **kwargs):
            calls["blast"] = kwargs

        def query(self, query, **kwargs):
            calls["query"] = kwargs
            raise Stop

    monkeypatch.setattr(cb.directi, "fit_DIRECTi", lambda adata, **kwargs: calls["fit"].append(kwargs))
    monkeypatch.setattr(cb.blast, "BLAST", RecordingBLAST)
    ref, qry, genes = data
    with pytest.raises(Stop):
        cellblast.predict(ref, qry, genes, label_key="cell_type", batch_key="study")
    assert len(calls["fit"]) == 4  # the Cell BLAST paper's ensemble of 4 models
    assert len({kw["random_seed"] for kw in calls["fit"]}) == 4
    for kw in calls["fit"]:
        for name in ("latent_dim", "h_dim", "batch_size", "learning_rate", "epoch", "patience"):
            assert kw[name] == fit_defaults[name], name
        # everything else (depth, prob_module NB, rmbatch_module Adversarial, val_split) is left to the package
        assert set(kw) == {"genes", "batch_effect", "random_seed", "path", "rmbatch_module_kwargs",
                           "latent_dim", "h_dim", "batch_size", "learning_rate", "epoch", "patience"}
        assert kw["rmbatch_module_kwargs"] == {"lambda_reg": adversarial["lambda_reg"], "delay": adversarial["delay"]}
        assert kw["batch_effect"] == ["study"]
    assert fit_defaults["epoch"] == 1000 and fit_defaults["patience"] == 30  # early stopping, the package's own
    for name in ("n_posterior", "n_empirical"):
        assert calls["blast"][name] == blast_defaults[name], name
    assert "distance_metric" not in calls["blast"] and calls["blast"]["n_jobs"] == cb.config.N_JOBS
    assert calls["query"]["n_neighbors"] == query_defaults["n_neighbors"]
    # the prediction rule's defaults are the package's filter, annotate and blast2co defaults
    wrapper = _defaults(cellblast.predict)
    assert wrapper["p_cutoff"] == _defaults(Hits.filter)["cutoff"] == 0.05
    assert wrapper["min_hits"] == _defaults(Hits.annotate)["min_hits"]
    assert wrapper["min_fraction"] == _defaults(Hits.annotate)["majority_threshold"]
    blast2co = _defaults(Hits.blast2co)
    assert (wrapper["blast2co_threshold"], wrapper["blast2co_min_path"]) == (blast2co["thresh"], blast2co["min_path"])
