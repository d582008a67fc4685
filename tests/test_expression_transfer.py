"""Expression transfer of held-out genes through M, each score against a brute-force computation on a tiny case."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import rankdata

from cellquery.transfer.expression import (
    ExpressionSettings, expression_scores, held_out_genes, score_expression_transfer, transfer_expression,
)


def test_held_out_genes_are_a_seeded_draw_from_the_most_variable_genes_outside_the_hvgs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8)) * np.array([1, 5, 4, 3, 2, 6, 0.5, 0])  # g7 constant
    genes = [f"g{j}" for j in range(8)]
    embedding = ["g1", "g5"]  # the two most variable genes are embedded
    # outside: g0 g2 g3 g4 g6 g7; by variance g2 > g3 > g4 > g0 > g6 > g7
    variance = X.var(axis=0)
    outside = [g for g in genes if g not in embedding]
    ranked = sorted(outside, key=lambda g: -variance[genes.index(g)])
    pool = np.array(ranked[:4])  # pool 2 x n_genes 2
    expected = sorted(np.random.default_rng(7).choice(pool, size=2, replace=False).tolist())
    assert held_out_genes(X, genes, embedding, n_genes=2, pool=2, seed=7) == expected
    assert held_out_genes(sp.csr_matrix(X), genes, embedding, n_genes=2, pool=2, seed=7) == expected
    # more than there are: every non-constant gene outside the HVGs; none outside: empty
    assert held_out_genes(X, genes, embedding, n_genes=10, pool=1, seed=0) == sorted(ranked[:5])
    assert held_out_genes(X, genes, genes, n_genes=2) == []


def test_transfer_expression_is_row_normalised_m_times_reference():
    M = sp.csr_matrix(np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 2.0]]))
    Y = np.array([[1.0, 0.0], [5.0, 2.0], [3.0, 4.0]])
    out = transfer_expression(M, sp.csr_matrix(Y))
    assert out[0] == pytest.approx([0.25 * 1 + 0.75 * 5, 0.75 * 2])
    assert np.isnan(out[1]).all()
    assert out[2] == pytest.approx([4.0, 3.0])


def brute_pearson(x, y):
    x, y = x - x.mean(), y - y.mean()
    return (x @ y) / np.sqrt((x @ x) * (y @ y))


def brute_jsd(p, q):
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a, b):
        keep = a > 0
        return np.sum(a[keep] * np.log(a[keep] / b[keep]))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def test_expression_scores_against_brute_force():
    rng = np.random.default_rng(3)
    measured = rng.gamma(1.0, size=(6, 4))
    predicted = measured + rng.normal(scale=0.5, size=(6, 4))
    predicted[:, 2] = 1.0  # a constant transferred gene has no correlation
    predicted = np.clip(predicted, 0, None)
    predicted_nan = np.vstack([predicted, np.full((1, 4), np.nan)])  # a cell without a transfer is left out
    measured_nan = np.vstack([measured, rng.gamma(1.0, size=(1, 4))])
    scores, per_gene = expression_scores(measured_nan, predicted_nan, ["a", "b", "c", "d"])
    genes = [0, 1, 3]
    pearson = [brute_pearson(measured[:, j], predicted[:, j]) for j in genes]
    spearman = [brute_pearson(rankdata(measured[:, j]), rankdata(predicted[:, j])) for j in genes]
    assert scores["expr_pearson"] == pytest.approx(np.mean(pearson))
    assert scores["expr_spearman"] == pytest.approx(np.mean(spearman))
    assert np.isnan(per_gene.loc[2, "pearson"]) and per_gene.loc[2, "rmse"] == pytest.approx(
        np.sqrt(np.mean((measured[:, 2] - 1.0) ** 2)))
    assert scores["expr_rmse"] == pytest.approx(np.sqrt(np.mean((measured - predicted) ** 2)))
    assert scores["expr_jsd"] == pytest.approx(np.mean([brute_jsd(measured[i], predicted[i]) for i in range(6)]))
    assert scores["expr_pearson_cell"] == pytest.approx(np.mean([brute_pearson(measured[i], predicted[i]) for i in range(6)]))
    assert scores["expr_cells"] == 6
    # a perfect transfer
    perfect, _ = expression_scores(measured, measured, ["a", "b", "c", "d"])
    assert perfect["expr_pearson"] == pytest.approx(1.0) and perfect["expr_rmse"] == 0.0 and perfect["expr_jsd"] == pytest.approx(0.0)


def test_score_expression_transfer_aligns_cells_by_name():
    genes = ["h1", "h2", "e1", "e2"]
    reference = ad.AnnData(
        X=sp.csr_matrix(np.array([[0.0, 1.0, 9, 9], [2.0, 0.0, 9, 9], [4.0, 3.0, 9, 9]])),
        obs=pd.DataFrame(index=["r0", "r1", "r2"]), var=pd.DataFrame(index=genes),
    )
    query = ad.AnnData(X=np.array([[1.0, 0.5, 0, 0], [4.0, 3.0, 0, 0]]), obs=pd.DataFrame(index=["q0", "q1"]),
                       var=pd.DataFrame(index=genes))
    # M's columns in the order r2, r0, r1 and rows q1, q0: q1 -> r2, q0 -> r0 and r1 equally
    M = sp.csr_matrix(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    scores, per_gene = score_expression_transfer(
        M, reference, query, ["e1", "e2"], reference_cells=["r2", "r0", "r1"], query_cells=["q1", "q0"],
        settings=ExpressionSettings(n_genes=2, pool=1),
    )
    # transferred: q1 = (4, 3) = measured, q0 = (1, 0.5) = measured: a perfect transfer
    assert scores["expr_genes"] == 2 and scores["expr_rmse"] == pytest.approx(0.0)
    assert per_gene["pearson"].tolist() == pytest.approx([1.0, 1.0])


def test_scatter_values_pick_the_genes_most_variable_in_the_reference_and_the_figure_draws(tmp_path):
    from cellquery.plots.expression import plot_expression_transfer
    from cellquery.transfer.expression import scatter_values

    reference = ad.AnnData(X=np.array([[0.0, 1.0, 0.0], [0.0, 5.0, 2.0], [0.0, 3.0, 1.0]]), var=pd.DataFrame(index=["a", "b", "c"]))
    measured = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    predicted = measured + 1
    values = scatter_values(["a", "b", "c"], measured, predicted, reference, n_genes=2)
    # variances: a 0, b 8/3, c 2/3 -> b then c
    assert values["gene"].tolist() == ["b", "b", "c", "c"]
    assert values["measured"].tolist() == [2.0, 5.0, 3.0, 6.0] and values["transferred"].tolist() == [3.0, 6.0, 4.0, 7.0]
    plot_expression_transfer([("g", "kernel-pca", values)], tmp_path / "scatter.png")
    plot_expression_transfer([], tmp_path / "empty.png")
    assert (tmp_path / "scatter.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "empty.png").stat().st_size > 0


def test_cellmappers_mapping_matrix_transfers_expression_as_its_map_layers(small_group, group):
    """The predictor keeps CellMapper's M (query file obsm "mapping"); M . X equals CellMapper's own map_layers."""
    pytest.importorskip("cellmapper")
    from cellquery.predictors import cellmapper, run_predictor

    ref, qry, genes = small_group(None)
    params = dict(n_neighbors=15, representation="pca", n_comps=16)
    _, _, query_file, _ = run_predictor(ref, qry, genes, predictor="cellmapper", params=params, group=group, seed=0)
    M = sp.csr_matrix(query_file.obsm["mapping"])
    assert M.shape == (qry.n_obs, ref.n_obs)
    np.testing.assert_allclose(np.asarray(M.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    # CellMapper itself, same settings, on the light AnnDatas (HVGs in X): its map_layers("X")
    mapper = cellmapper.joint_space(ref, qry, genes, group.label_key, [], representation="pca", n_comps=16, seed=0)
    cellmapper.compute_graphs(mapper, n_neighbors=15, kernel="gauss", knn_method="sklearn", seed=0)
    mapper.compute_mapping_matrix(kernel_method="gauss")
    mapper.map_layers("X")
    imputed = mapper.query_imputed.X
    imputed = imputed.toarray() if sp.issparse(imputed) else np.asarray(imputed)
    np.testing.assert_allclose(transfer_expression(M, ref[:, genes].X), imputed, rtol=1e-5, atol=1e-8)


def test_a_run_without_held_out_genes_gets_a_row_that_says_so(tmp_path, monkeypatch):
    """pbmc68k keeps every gene that varies as an HVG: its row names the run and the reason, other rows draw."""
    import cellquery.plots.expression as expression
    from cellquery.transfer.expression import scatter_values

    figures = []
    monkeypatch.setattr(expression, "save_png", lambda fig, path: figures.append(fig))
    reference = ad.AnnData(X=np.array([[0.0, 1.0], [0.0, 5.0]]), var=pd.DataFrame(index=["a", "b"]))
    values = scatter_values(["b"], np.array([[1.0], [2.0]]), np.array([[1.5], [2.5]]), reference)
    empty = scatter_values([], np.empty((2, 0)), np.empty((2, 0)), reference)
    expression.plot_expression_transfer([("simulated", "pca", values), ("pbmc68k", "pca", empty)], tmp_path / "f.png")
    axes = np.array(figures[0].axes).reshape(2, 4)
    assert axes[0, 0].get_title() == "simulated / pca\nb: r = 1.00"
    assert [t.get_text() for t in axes[1, 0].texts] == [f"pbmc68k / pca: {expression.NO_GENES}"]
    assert not any(ax.axison for ax in axes[1]) and not any(ax.texts for ax in axes[1, 1:])
